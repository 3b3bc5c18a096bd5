"""From a bearer token to an access context: what this request may do, and to which data.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- the granted scopes
say which interactions (c, r, u, d, s) on which types; the level says whose data:
`patient/` the compartment of the patient in the launch context, `user/` what the person
may see (a Patient user: their own compartment; a RelatedPerson: the compartment of the
patient they are related to; a Practitioner or staff member: what the scopes allow),
`system/` everything. A v2 query (`?category=...`) narrows a scope to the resources that
match it. This module only describes the access; fhir_search turns it into SQL, so the
narrowing is part of every query rather than a filter applied afterwards.

Looking a token up is one indexed SELECT (by the SHA-256 DOT stores instead of the token),
remembered by each process on PostgreSQL until the database says something changed
(smart_auth.token_cache).
"""
from __future__ import annotations

import hashlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from django.conf import settings
from django.db import connection

from fhir_api.store.errors import Forbidden, Unauthorized
from smart_auth import token_cache
# The compiled Consents fhir_search.consent narrows by (smart_auth.consent keeps them).
from smart_auth.models import ConsentCriterion, ConsentNode  # noqa: F401
from smart_auth.scopes import ClinicalScope, ScopeError, parse_clinical

REALM = 'Bearer realm="fhir"'
AUDIT_TYPE = "AuditEvent"


# The access of the request being served (None: authentication is off). Set by the REST
# floor after checking the token; read by fhir_search when it builds SQL.
current: ContextVar[Access | None] = ContextVar("fhir_access", default=None)


@dataclass(frozen=True)
class Rule:
    """One way a resource may be reached: inside a patient's compartment (or anywhere when
    `compartment` is None) and matching a query (or any resource when empty)."""

    compartment: str | None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def unrestricted(self) -> bool:
        return self.compartment is None and not self.query


EVERYTHING = (Rule(None),)


@dataclass(frozen=True)
class Access:
    """What one token allows (immutable; built once per request)."""

    scopes: tuple[ClinicalScope, ...]
    scope: str = ""  # the granted scope string, as the token response said it
    patient: str | None = None  # the launch context patient's id
    encounter: str | None = None
    fhir_user: str | None = None  # e.g. "Practitioner/12"
    # The patient id a person is limited to under user/ scopes; "" when user/ scopes give
    # nothing (a person with no FHIR identity who is not staff); None when not limited.
    user_compartment: str | None = None
    client_id: str = ""
    user_id: int | None = None
    token_id: int | None = None
    purpose_of_use: str = ""
    staff: bool = False  # the person is staff (user/ scopes then reach the audit trail)
    # Break-the-glass: the token's purpose is ETREAT and its client is registered for it.
    # Consent deny provisions that do not name ETREAT (and a default of deny) yield to it.
    break_glass: bool = False
    # Whether any Consent decides anything (False: no consent SQL needed under a default of
    # permit). True unless the token lookup saw none, so an Access built elsewhere fails closed.
    consents: bool = True
    # Whether some Consent names an Organization as actor (the token's are then looked up).
    organization_consents: bool = True
    # What was derived from this access during the request (its rules per type and
    # interaction here, their SQL in fhir_search.access): an Access lives for one request.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def actors(self) -> tuple[str, ...]:
        """Who acts, as Consent.provision.actor names them: the person and the client app."""
        person = (self.fhir_user,) if self.fhir_user else ()
        return (*person, client_actor(self.client_id))

    def permits(self, resource_type: str, interaction: str) -> bool:
        """Whether any granted scope allows this interaction on this type (compartment aside)."""
        return bool(self.rules(resource_type, interaction))

    def require(self, resource_type: str, interaction: str) -> None:
        if not self.permits(resource_type, interaction):
            raise Forbidden(
                f"The access token does not allow {_VERBS.get(interaction, interaction)} on {resource_type} "
                f"(granted: {self.scope or 'no clinical scopes'})"
            )

    def rules(self, resource_type: str, interaction: str) -> tuple[Rule, ...]:
        """The ways `resource_type` may be reached for `interaction`; () when it may not be."""
        key = (resource_type, interaction)
        found = self.memo.get(key)
        if found is None:
            found = self._compute(resource_type, interaction)
            self.memo[key] = found
        return found

    def _compute(self, resource_type: str, interaction: str) -> tuple[Rule, ...]:
        out: list[Rule] = []
        for scope in self.scopes:
            if not scope.covers(resource_type, interaction):
                continue
            if scope.level == "patient":
                if not self.patient:
                    continue  # a patient scope without a patient in context reaches nothing
                compartment: str | None = self.patient
            elif scope.level == "user":
                if self.user_compartment == "":
                    continue
                compartment = self.user_compartment
                if compartment is None and resource_type == AUDIT_TYPE and not self.staff:
                    continue  # the whole audit trail is for staff; a patient sees their own
            else:
                compartment = None
            if compartment is not None and interaction in "rs" and resource_type in _shared_types():
                compartment = None  # not patient data: a patient app reads the doctor its data names
            rule = Rule(compartment, scope.query)
            if rule.unrestricted:
                return EVERYTHING
            if rule not in out:
                out.append(rule)
        return tuple(out)

    def unrestricted(self, resource_type: str, interaction: str) -> bool:
        return self.rules(resource_type, interaction) == EVERYTHING

    def snapshot(self) -> dict:
        """What a background job needs to act later with exactly this access (JSON; no token)."""
        return {"scope": self.scope, "patient": self.patient, "encounter": self.encounter,
                "fhir_user": self.fhir_user, "user_compartment": self.user_compartment,
                "client_id": self.client_id, "user_id": self.user_id, "purpose_of_use": self.purpose_of_use}


def from_snapshot(saved: dict) -> Access:
    """The Access an `Access.snapshot()` describes (a job runs with its requester's access)."""
    return Access(scopes=scopes_of(saved.get("scope") or ""), scope=saved.get("scope") or "",
                  patient=saved.get("patient"), encounter=saved.get("encounter"), fhir_user=saved.get("fhir_user"),
                  user_compartment=saved.get("user_compartment"), client_id=saved.get("client_id") or "",
                  user_id=saved.get("user_id"), purpose_of_use=saved.get("purpose_of_use") or "")


BREAK_THE_GLASS = "ETREAT"
# Access.memo key: "Type/id" of the writes of a request that only break-the-glass allowed
# (noted by the write guard, read by the audit recorder).
SET_ASIDE = "break-glass set aside"
# The identifier system of the Device that stands for a client app (value: its client id).
CLIENT_ID_SYSTEM = "urn:ietf:params:oauth:client-id"


def client_actor(client_id: str) -> str:
    """A client app among a token's actors; a Consent's actor Device that carries the app's
    client id (identifier system urn:ietf:params:oauth:client-id) is compiled to this."""
    return f"client:{client_id}"


def _shared_types() -> frozenset[str]:
    """Types outside every patient compartment that patient/ (and a Patient user's user/)
    scopes may read and search in full (SMART_PATIENT_SHARED_TYPES): the practitioners,
    organizations, locations and medications a patient's records point to. Writes stay in
    the compartment, where these types never are, so a patient token cannot write them."""
    return settings.SMART_PATIENT_SHARED_TYPES


_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@lru_cache(maxsize=1024)
def scopes_of(scope: str) -> tuple[ClinicalScope, ...]:
    out = []
    for item in scope.split():
        try:
            clinical = parse_clinical(item)
        except ScopeError:
            continue  # never granted (the authorization server checks); ignore defensively
        if clinical is not None:
            out.append(clinical)
    return tuple(out)


# -- token lookup ---------------------------------------------------------------------------

_SQL: str | None = None


def _lookup_sql() -> str:
    global _SQL
    if _SQL is None:
        from django.contrib.auth import get_user_model
        from oauth2_provider.models import get_access_token_model, get_application_model

        from smart_auth.models import ConsentCriterion, ConsentNode, TokenContext

        token = get_access_token_model()._meta.db_table
        client = get_application_model()._meta.db_table
        context = TokenContext._meta.db_table
        user = get_user_model()._meta.db_table
        _SQL = (
            "SELECT t.id, t.expires, t.scope, t.user_id, c.client_id, c.is_active, "
            "x.patient, x.encounter, x.fhir_user, x.purpose_of_use, u.is_active, u.is_staff, "
            # In the same round trip: whether any Consent is in force (see Access.consents).
            f"c.break_glass, EXISTS (SELECT 1 FROM {ConsentNode._meta.db_table}), "
            f"EXISTS (SELECT 1 FROM {ConsentCriterion._meta.db_table} WHERE kind = '{ConsentCriterion.ORGANIZATION}') "
            f"FROM {token} t JOIN {client} c ON c.id = t.application_id "
            f"LEFT JOIN {context} x ON x.access_token_id = t.id "
            f"LEFT JOIN {user} u ON u.id = t.user_id "
            "WHERE t.token_checksum = %s"
        )
    return _SQL


def _lookup(checksum: str) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(_lookup_sql(), [checksum])
        return cursor.fetchone()


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer` header (RFC 6750 section 2.1)."""
    if not authorization:
        raise Unauthorized("This server requires an access token: send Authorization: Bearer <token>",
                           headers={"WWW-Authenticate": REALM})
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("The Authorization header must be 'Bearer <token>'",
                           headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'})
    return token


def _invalid() -> Unauthorized:
    return Unauthorized("The access token is invalid, expired or revoked",
                        headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


def access_for_token(token: str) -> Access:
    """The access a bearer token gives; Unauthorized when it is unknown, expired or revoked."""
    checksum = hashlib.sha256(token.encode()).hexdigest()
    row = token_cache.lookup(checksum, lambda: _lookup(checksum))
    if row is None:
        raise _invalid()
    (token_id, expires, scope, user_id, client_id, client_active,
     patient, encounter, fhir_user, purpose, user_active, user_staff, client_break_glass, consents,
     organization_consents) = row
    if isinstance(expires, str):  # SQLite returns text for a raw SELECT
        expires = datetime.fromisoformat(expires)
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    if expires <= datetime.now(timezone.utc) or not client_active:
        raise _invalid()
    if user_id is not None and not user_active:
        raise _invalid()  # the person's account was disabled after the token was issued
    user_compartment = None
    if user_id is not None:
        user_compartment = _user_compartment(fhir_user or "", bool(user_staff))
    return Access(
        scopes=scopes_of(scope or ""),
        scope=scope or "",
        patient=patient or None,
        encounter=encounter or None,
        fhir_user=fhir_user or None,
        user_compartment=user_compartment,
        client_id=client_id,
        user_id=user_id,
        token_id=token_id,
        purpose_of_use=purpose or "",
        staff=bool(user_staff) and user_id is not None,
        # Checked again here: a client whose break-glass registration was withdrawn loses it.
        break_glass=purpose == BREAK_THE_GLASS and bool(client_break_glass),
        consents=bool(consents),
        organization_consents=bool(organization_consents),
    )


def _user_compartment(fhir_user: str, staff: bool) -> str | None:
    """The patient a person's user/ scopes are limited to (see Access.user_compartment)."""
    kind, _, ident = fhir_user.partition("/")
    if kind == "Patient":
        return ident
    if kind == "RelatedPerson":
        return _related_patient(ident)
    if kind == "Practitioner" or (not fhir_user and staff):
        return None
    return ""  # fail closed: nobody in particular sees nothing through user/ scopes


_RELATED: dict[str, tuple[float, str]] = {}
_RELATED_TTL = 30.0


def _related_patient(related_person_id: str) -> str:
    """related_patient(), cached briefly: it is needed on every request of the person."""
    hit = _RELATED.get(related_person_id)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    patient = related_patient(related_person_id)
    _RELATED[related_person_id] = (time.monotonic() + _RELATED_TTL, patient)
    return patient


def related_patient(related_person_id: str) -> str:
    """The id of the patient a RelatedPerson is related to (RelatedPerson.patient); "" if none."""
    from fhir_api.store import repository
    from fhir_api.store.errors import FhirError

    try:
        reference = repository.read("RelatedPerson", related_person_id).content.get("patient", {}).get("reference", "")
    except FhirError:
        return ""
    kind, _, ident = reference.rpartition("/")
    return ident if kind.endswith("Patient") else ""
