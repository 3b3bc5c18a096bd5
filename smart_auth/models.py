"""What SMART on FHIR stores beside django-oauth-toolkit's tables.

https://hl7.org/fhir/smart-app-launch/ -- a registered app (`Client`, DOT's swappable
Application with SMART's extra registration data), the FHIR resource a person is
(`FhirUserLink`, their `fhirUser`), an EHR launch (`Launch`), and the launch context that
travels from the authorize screen through the code (`GrantContext`) into each token
(`TokenContext`). Token and code values are never stored here: DOT keeps only their SHA-256
(COMPLIANT_BCP_RFC9700_TOKEN_STORAGE), and a launch value is stored as its SHA-256 too.
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from oauth2_provider.models import AbstractApplication
from oauth2_provider.settings import oauth2_settings


def digest(value: str) -> str:
    """The SHA-256 under which a bearer value (launch, assertion id) is stored."""
    return hashlib.sha256(value.encode()).hexdigest()


class Client(AbstractApplication):
    """A registered SMART app: DOT's Application plus what SMART registration needs."""

    # Space-separated scopes the app may be granted; blank: any scope of its kind
    # (user/patient/launch/openid scopes for people's apps, system/ scopes for services).
    allowed_scopes = models.TextField(blank=True)
    # Backend services: the app's public keys (a JWKS document) or where to fetch them.
    jwks = models.TextField(blank=True)
    jwks_uri = models.URLField(max_length=2000, blank=True)
    launch_uri = models.URLField(max_length=2000, blank=True)
    is_active = models.BooleanField(default=True)
    access_token_lifetime = models.PositiveIntegerField(default=3600)
    refresh_token_lifetime = models.PositiveIntegerField(default=90 * 24 * 3600)
    # Purpose of use (v3 ActReason code) recorded on the app's tokens unless they carry one.
    purpose_of_use = models.CharField(max_length=64, blank=True)
    # May ask for ETREAT (break-the-glass); see the consent issue.
    break_glass = models.BooleanField(default=False)
    # The Device resource that stands for the app in Consent actors (registration makes it).
    device_id = models.CharField(max_length=64, blank=True)

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        verbose_name = "client app"

    def is_usable(self, request) -> bool:
        """DOT's hook: a disabled client can neither get nor use tokens."""
        return self.is_active

    @property
    def is_public(self) -> bool:
        return self.client_type == AbstractApplication.CLIENT_PUBLIC

    @property
    def scope_list(self) -> list[str]:
        return self.allowed_scopes.split()


class FhirUserLink(models.Model):
    """The FHIR resource a Django user is: Patient/ID, Practitioner/ID or RelatedPerson/ID."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fhir_user")
    resource_type = models.CharField(max_length=64)
    logical_id = models.CharField(max_length=64)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.logical_id}"

    def __str__(self) -> str:
        return f"{self.user} is {self.reference}"


class Launch(models.Model):
    """An EHR launch: the opaque `launch` value an EHR hands an app, bound to its context."""

    value_digest = models.CharField(max_length=64, unique=True)
    patient = models.CharField(max_length=64, blank=True)
    encounter = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()


class LaunchContextFields(models.Model):
    """The context a grant carries to its tokens (token response fields and enforcement)."""

    patient = models.CharField(max_length=64, blank=True)
    encounter = models.CharField(max_length=64, blank=True)
    fhir_context = models.JSONField(default=list, blank=True)
    need_patient_banner = models.BooleanField(default=False)
    smart_style_url = models.CharField(max_length=2000, blank=True)
    # The person's FHIR resource (Patient/1, Practitioner/2) when the token acts for one.
    fhir_user = models.CharField(max_length=140, blank=True)
    purpose_of_use = models.CharField(max_length=64, blank=True)
    # online_access: the token dies with the sign-in session it came from.
    online = models.BooleanField(default=False)
    session_key = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True

    CONTEXT_FIELDS = (
        "patient", "encounter", "fhir_context", "need_patient_banner", "smart_style_url",
        "fhir_user", "purpose_of_use", "online", "session_key",
    )

    def context(self) -> dict:
        return {name: getattr(self, name) for name in self.CONTEXT_FIELDS}


class GrantContext(LaunchContextFields):
    """What the person chose on the authorize screen, kept with the authorization code."""

    grant = models.OneToOneField(oauth2_settings.GRANT_MODEL, on_delete=models.CASCADE,
                                 related_name="smart_context")


class TokenContext(LaunchContextFields):
    """The launch context of one access token (copied to the tokens a refresh makes)."""

    access_token = models.OneToOneField(oauth2_settings.ACCESS_TOKEN_MODEL, on_delete=models.CASCADE,
                                        related_name="smart_context")


class UsedAssertion(models.Model):
    """A client assertion's `jti`, kept until the assertion expires, so it is never accepted twice."""

    client_id = models.CharField(max_length=100)
    jti_digest = models.CharField(max_length=64)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "jti_digest"], name="assertion_once")]


class RedeemedCode(models.Model):
    """An authorization code already exchanged, and what it was exchanged for.

    RFC 6749 section 4.1.2: a code used twice is refused and the tokens issued from it are
    revoked. DOT deletes the code on first use; this keeps its SHA-256 (never the code) and
    the token family, so a replay can find and revoke everything that came from it.
    """

    code_digest = models.CharField(max_length=64, unique=True)
    access_token_id = models.BigIntegerField(null=True)
    token_family = models.UUIDField(null=True)
    expires = models.DateTimeField(db_index=True)


class ConsentNode(models.Model):
    """One provision of an active patient-privacy Consent, compiled for the access SQL.

    Written only by smart_auth.consent when a Consent is written (in the same transaction);
    fhir_search.consent reads it inside every query. Each row carries what its whole path of
    provisions (itself and its parents) requires where one value per request makes the test
    exact (period, dataPeriod, actions, class, purpose); per-level criteria that a resource
    or a token meets by any of several values (actor, code, securityLabel) are
    ConsentCriterion rows. A provision that can never apply (an empty intersection) is not
    stored, nor are its exceptions.
    """

    id = models.BigAutoField(primary_key=True)
    consent = models.ForeignKey("fhir_api.Resource", on_delete=models.CASCADE, related_name="+")
    patient_id = models.CharField(max_length=64)
    parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="children")
    deny = models.BooleanField()
    # Open ends are the calendar's ends (smart_auth.consent.EARLIEST/LATEST), not NULL: one
    # comparison each in the access SQL, which SQLite must parse inside deep chains.
    start = models.DateTimeField()  # the provision applies from
    end = models.DateTimeField()  # until (exclusive)
    data_low = models.DateTimeField()  # dataPeriod: the care date of the data it governs
    data_high = models.DateTimeField()
    dated = models.BooleanField(default=False)  # has a dataPeriod
    reads = models.BooleanField(default=True)  # governs read/search (action access/use/disclose)
    writes = models.BooleanField(default=True)  # governs create/update/delete (collect/correct)
    # The path's purposes name ETREAT: such a deny holds even against break-the-glass.
    names_etreat = models.BooleanField(default=False)
    groups = models.PositiveSmallIntegerField(default=0)  # distinct (level, kind) of its criteria

    class Meta:
        indexes = [models.Index(fields=["patient_id", "deny"], name="consent_node_patient")]


class ConsentCriterion(models.Model):
    """One value a ConsentNode's path requires: the node applies when, for each (level, kind)
    it has, the token or the resource has at least one of the values (fhir_search.consent)."""

    ACTOR, PURPOSE, CLASS, CODE, LABEL, DATA = "a", "p", "t", "c", "s", "d"
    # An Organization actor: a kind of its own so a token's Organizations are looked up only
    # while some Consent names one; it shares its group with the level's other actors.
    ORGANIZATION = "o"

    id = models.BigAutoField(primary_key=True)
    node = models.ForeignKey(ConsentNode, on_delete=models.CASCADE, related_name="criteria")
    level = models.PositiveSmallIntegerField()  # 0 for the path-wide kinds (class, purpose)
    kind = models.CharField(max_length=1)
    group = models.PositiveSmallIntegerField()  # numbers its node's (level, kind) pairs
    system = models.CharField(max_length=255, blank=True)  # code, securityLabel ("": any); data: the type
    value = models.CharField(max_length=255)

    class Meta:
        indexes = [models.Index(fields=["node", "level", "kind", "value"], name="consent_criterion_node"),
                   models.Index(fields=["kind"], name="consent_criterion_kind")]
