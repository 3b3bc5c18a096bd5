"""`manage.py smart_user create`: people who sign in at the authorize screen.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data
-- `--fhir-user` links a person to the Patient, Practitioner or RelatedPerson they are
(their fhirUser), which must exist; refusals are one line on stderr and exit code 1.
"""
from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model

from fhir_api.store import repository
from smart_auth.models import FhirUserLink
from tests.smart_auth.conftest import run

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def test_create_a_person_who_can_sign_in():
    out = run("smart_user", "create", "--username", "alice", "--password", PASSWORD)
    assert out == {"id": out["id"], "username": "alice", "staff": False, "fhir_user": None}
    user = authenticate(username="alice", password=PASSWORD)
    assert user is not None and user.pk == out["id"] and not user.is_staff
    assert not FhirUserLink.objects.filter(user=user).exists()


def test_staff_flag_makes_staff():
    out = run("smart_user", "create", "--username", "nurse", "--password", PASSWORD, "--staff")
    assert out["staff"] is True and get_user_model().objects.get(username="nurse").is_staff


def test_fhir_user_links_a_patient(patient):
    out = run("smart_user", "create", "--username", "peter", "--password", PASSWORD,
              "--fhir-user", f"Patient/{patient['id']}")
    assert out["fhir_user"] == f"Patient/{patient['id']}"
    link = FhirUserLink.objects.get(user__username="peter")
    assert (link.resource_type, link.logical_id) == ("Patient", patient["id"])


def test_fhir_user_links_a_practitioner(practitioner):
    out = run("smart_user", "create", "--username", "drcareful", "--password", PASSWORD,
              "--fhir-user", f"Practitioner/{practitioner['id']}", "--staff")
    assert out["fhir_user"] == f"Practitioner/{practitioner['id']}" and out["staff"] is True


def test_fhir_user_links_a_related_person(patient):
    related = repository.create("RelatedPerson", {
        "resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{patient['id']}"},
        "name": [{"family": "Chalmers", "given": ["Jane"]}],
    }).stored.logical_id
    out = run("smart_user", "create", "--username", "jane", "--password", PASSWORD,
              "--fhir-user", f"RelatedPerson/{related}")
    assert out["fhir_user"] == f"RelatedPerson/{related}"


def _refused(cli, *args: str) -> str:
    result = cli("smart_user", "create", *args)
    assert result.exit_code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: "), result.stderr
    assert get_user_model().objects.filter(username="bob").count() == 0
    return lines[0]


def test_a_fhir_user_that_does_not_exist_is_refused(cli):
    assert "--fhir-user Patient/nobody does not exist" in _refused(
        cli, "--username", "bob", "--password", PASSWORD, "--fhir-user", "Patient/nobody")


def test_a_fhir_user_of_another_type_is_refused(cli, patient):
    observation = repository.create("Observation", {
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{patient['id']}"},
    }).stored.logical_id
    line = _refused(cli, "--username", "bob", "--password", PASSWORD, "--fhir-user", f"Observation/{observation}")
    assert "must be Patient/ID, Practitioner/ID or RelatedPerson/ID" in line


def test_a_patient_id_given_as_a_practitioner_is_refused(cli, patient):
    line = _refused(cli, "--username", "bob", "--password", PASSWORD, "--fhir-user", f"Practitioner/{patient['id']}")
    assert f"Practitioner/{patient['id']} does not exist" in line


def test_a_deleted_fhir_user_is_refused(cli, patient):
    repository.delete("Patient", patient["id"])
    line = _refused(cli, "--username", "bob", "--password", PASSWORD, "--fhir-user", f"Patient/{patient['id']}")
    assert "was deleted" in line


@pytest.mark.parametrize("value", ["Patient", "Patient/", "Patient/a/b", "12"])
def test_a_malformed_fhir_user_is_refused(cli, value):
    assert "must be Patient/ID" in _refused(cli, "--username", "bob", "--password", PASSWORD, "--fhir-user", value)


def test_an_existing_username_is_refused(cli):
    run("smart_user", "create", "--username", "carol", "--password", PASSWORD)
    result = cli("smart_user", "create", "--username", "carol", "--password", "another password")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["CommandError: a user named 'carol' already exists"]
    assert authenticate(username="carol", password=PASSWORD) is not None


def test_a_too_short_password_is_refused(cli):
    assert "--password: This password is too short" in _refused(cli, "--username", "bob", "--password", "short")
