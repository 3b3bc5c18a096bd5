"""EHR launch values: an opaque `launch` bound to a patient (and optionally an encounter).

https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch -- the EHR
opens the app with `launch=<value>`; the app sends it back to authorize, which turns it
into the token's context. The value is random and only its SHA-256 is stored, so the
database never holds a usable launch; it expires after a few minutes.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from fhir_api.store import repository
from fhir_api.store.errors import FhirError, Gone
from smart_auth.models import Launch, digest

DEFAULT_MINUTES = 5
MAX_MINUTES = 24 * 60


class LaunchError(ValueError):
    """A launch that cannot be made as asked; the message is one line."""


@dataclass(frozen=True)
class NewLaunch:
    value: str  # shown once, to the EHR side that asked for it
    patient: str
    encounter: str
    expires: datetime

    def as_json(self) -> dict[str, str]:
        out = {"launch": self.value, "patient": self.patient}
        if self.encounter:
            out["encounter"] = self.encounter
        out["expires"] = self.expires.isoformat().replace("+00:00", "Z")
        return out


def _content(resource_type: str, logical_id: str) -> dict:
    try:
        return repository.read(resource_type, logical_id).content
    except Gone:
        raise LaunchError(f"{resource_type}/{logical_id} was deleted") from None
    except FhirError:
        raise LaunchError(f"{resource_type}/{logical_id} does not exist") from None


def _check_id(value: str, name: str) -> str:
    value = (value or "").strip()
    if value.startswith(("Patient/", "Encounter/")):
        value = value.partition("/")[2]
    if not value or "/" in value or len(value) > 64:
        raise LaunchError(f"{name} must be a resource id")
    return value


def create_launch(patient: str, encounter: str = "", minutes: int = DEFAULT_MINUTES,
                  user: AbstractBaseUser | None = None) -> NewLaunch:
    """Make and store a launch for an existing patient (and an encounter of that patient)."""
    patient = _check_id(patient, "patient")
    if not 1 <= minutes <= MAX_MINUTES:
        raise LaunchError(f"minutes must be between 1 and {MAX_MINUTES}")
    _content("Patient", patient)
    if encounter:
        encounter = _check_id(encounter, "encounter")
        subject = _content("Encounter", encounter).get("subject", {}).get("reference", "")
        if subject != f"Patient/{patient}" and not subject.endswith(f"/Patient/{patient}"):
            raise LaunchError(f"Encounter/{encounter} is not an encounter of Patient/{patient}")
    value = secrets.token_urlsafe(32)
    expires = timezone.now() + timedelta(minutes=minutes)
    Launch.objects.create(value_digest=digest(value), patient=patient, encounter=encounter or "",
                          created_by=user if user is not None and user.is_authenticated else None,
                          expires=expires)
    return NewLaunch(value, patient, encounter or "", expires)
