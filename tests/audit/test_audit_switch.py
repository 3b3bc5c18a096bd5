"""FHIR_AUDIT=false switches the audit trail off, for benchmarks and development only.

The trail must never be silently off where tokens are checked: the setting is refused at
start-up with FHIR_AUTH_REQUIRED on, the run-time test holds to the same rule if settings are
changed later, and a process that starts with the trail off says so loudly in its log.
"""
from __future__ import annotations

import pytest

from fhir_api.store.models import Resource
from smart_auth.audit import trail
from tests.access_tokens import bearer, mint
from tests.conftest import new_patient
from tests.fhirproject.test_settings import manage, one_line_error

pytestmark = pytest.mark.django_db


def _audit_count() -> int:
    return Resource.objects.filter(resource_type="AuditEvent").count()


def test_start_up_refuses_the_trail_off_while_tokens_are_checked():
    line = one_line_error(manage("check", FHIR_AUDIT="false", FHIR_AUTH_REQUIRED="true"))
    assert line.startswith("configuration error: ") and "FHIR_AUDIT=false" in line
    assert "FHIR_AUTH_REQUIRED=false" in line


def test_start_up_with_the_trail_off_and_auth_off_warns_loudly():
    result = manage("check", FHIR_AUDIT="false", FHIR_AUTH_REQUIRED="false")
    assert result.returncode == 0, result.stderr
    assert "THE AUDIT TRAIL IS OFF" in result.stderr


def test_with_auth_off_and_the_trail_off_nothing_is_recorded(fhir, settings):
    settings.FHIR_AUDIT = False
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    fhir.get(f"/Patient/{pid}")
    fhir.get("/Patient/missing")
    assert _audit_count() == 0
    settings.FHIR_AUDIT = True
    fhir.get(f"/Patient/{pid}")
    assert _audit_count() == 1


@pytest.mark.auth_on
def test_with_auth_on_the_trail_stays_on_whatever_fhir_audit_says(fhir, settings):
    settings.FHIR_AUDIT = False
    assert trail.enabled()
    token = bearer(mint("system/*.cruds"))
    pid = fhir.post("/Patient", new_patient(), headers=token).json()["id"]
    fhir.get(f"/Patient/{pid}", headers=token)
    assert _audit_count() == 2  # the create (in its transaction) and the read
