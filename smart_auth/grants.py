"""What a client may be granted, and the launch context a grant carries.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- a grant never
exceeds the client's registration (blank: any scope of the client's kind), people never get
`system/` scopes, services get only `system/` scopes, and `patient/` scopes need a patient in
context (an EHR launch, the person's own record, or one the person picks).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from oauth2_provider.models import AbstractApplication

from smart_auth.access import related_patient
from smart_auth.models import FhirUserLink, Launch, digest
from smart_auth.scopes import CONTEXT_SCOPES, ScopeError, check_scope, parse_clinical, within


def is_service(client) -> bool:
    return client.authorization_grant_type == AbstractApplication.GRANT_CLIENT_CREDENTIALS


def check_grantable(client, scopes: list[str]) -> None:
    """Raise ScopeError unless every scope is known and may be granted to this client."""
    if not scopes:
        raise ScopeError("the request names no scope")
    allowed = client.scope_list
    service = is_service(client)
    for scope in scopes:
        check_scope(scope)
        clinical = parse_clinical(scope)
        if service and (clinical is None or clinical.level != "system"):
            raise ScopeError(f"{scope!r}: a backend service may only have system/ scopes")
        if not service and clinical is not None and clinical.level == "system":
            raise ScopeError(f"{scope!r}: system/ scopes are for backend services, never for people")
        if not service and clinical is None and scope not in CONTEXT_SCOPES:
            raise ScopeError(f"unknown scope {scope!r}")
        if allowed and not within(scope, allowed):
            raise ScopeError(f"{scope!r} is beyond what this client is registered for")


def wants_patient(scopes: list[str]) -> bool:
    """Whether these scopes need a patient in context."""
    if "launch/patient" in scopes:
        return True
    for scope in scopes:
        clinical = parse_clinical(scope)
        if clinical is not None and clinical.level == "patient":
            return True
    return False


def find_launch(value: str) -> Launch | None:
    """An EHR launch by its opaque value (stored as a SHA-256), if it has not expired."""
    return Launch.objects.filter(value_digest=digest(value), expires__gt=timezone.now()).first()


@dataclass(frozen=True)
class Person:
    """Who is signing in, as FHIR sees them."""

    fhir_user: str  # "Practitioner/12", or "" for a person with no FHIR identity
    own_patient: str  # the patient whose record is theirs (Patient, RelatedPerson), or ""

    @property
    def picks_patient(self) -> bool:
        """Whether this person chooses the patient (everyone not tied to one patient)."""
        return not self.own_patient


def person_of(user) -> Person:
    link = FhirUserLink.objects.filter(user=user).first()
    if link is None:
        return Person("", "")
    if link.resource_type == "Patient":
        return Person(link.reference, link.logical_id)
    if link.resource_type == "RelatedPerson":
        return Person(link.reference, related_patient(link.logical_id))
    return Person(link.reference, "")


def patient_exists(logical_id: str) -> bool:
    from fhir_api.store import repository
    from fhir_api.store.errors import FhirError

    try:
        repository.read("Patient", logical_id)
    except FhirError:
        return False
    return True
