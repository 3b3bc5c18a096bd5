"""People who sign in at the authorize screen, and the FHIR resource each one is.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data
-- `fhirUser` names the Patient, Practitioner or RelatedPerson a person is; user/ scopes
are limited by it (see smart_auth.access). The link is checked against the store, so a
person is never tied to a resource that does not exist.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from fhir_api.store import repository
from fhir_api.store.errors import FhirError, Gone
from smart_auth.models import FhirUserLink

FHIR_USER_TYPES = ("Patient", "Practitioner", "RelatedPerson")


class PersonError(ValueError):
    """A person who cannot be created as asked; the message is one line."""


def check_fhir_user(reference: str) -> tuple[str, str]:
    """(type, id) of an existing Patient, Practitioner or RelatedPerson, from `Type/id`."""
    resource_type, _, logical_id = reference.strip().partition("/")
    if resource_type not in FHIR_USER_TYPES or not logical_id or "/" in logical_id:
        raise PersonError(
            f"--fhir-user {reference!r} must be Patient/ID, Practitioner/ID or RelatedPerson/ID")
    try:
        repository.read(resource_type, logical_id)
    except Gone:
        raise PersonError(f"--fhir-user {resource_type}/{logical_id} was deleted") from None
    except FhirError:
        raise PersonError(f"--fhir-user {resource_type}/{logical_id} does not exist") from None
    return resource_type, logical_id


@transaction.atomic
def create_person(username: str, password: str, fhir_user: str | None = None,
                  staff: bool = False) -> AbstractBaseUser:
    """A Django user who can sign in, linked to their FHIR resource when one is given."""
    User = get_user_model()
    username = username.strip()
    if not username:
        raise PersonError("--username must not be blank")
    if User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists():
        raise PersonError(f"a user named {username!r} already exists")
    link = check_fhir_user(fhir_user) if fhir_user else None
    user = User(**{User.USERNAME_FIELD: username}, is_staff=staff)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise PersonError("--password: " + " ".join(exc.messages)) from None
    user.set_password(password)
    user.save()
    if link is not None:
        FhirUserLink.objects.create(user=user, resource_type=link[0], logical_id=link[1])
    return user
