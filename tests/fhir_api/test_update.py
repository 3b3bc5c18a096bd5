"""update and update-as-create, with If-Match (https://hl7.org/fhir/R4/http.html#update)."""
from __future__ import annotations

import pytest

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def test_update_creates_new_version(fhir, patient):
    response = fhir.put(f"/Patient/{patient['id']}", dict(patient, gender="female"))
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    assert response["ETag"] == 'W/"2"'
    assert response["Location"].endswith(f"/Patient/{patient['id']}/_history/2")


def test_update_as_create_with_client_id_is_201(fhir):
    response = fhir.put("/Patient/pat-42", new_patient(id="pat-42"))
    assert response.status_code == 201
    assert response.json()["id"] == "pat-42"
    assert fhir.get("/Patient/pat-42").status_code == 200


def test_update_without_id_in_body_is_400(fhir):
    assert fhir.put("/Patient/pat-1", new_patient()).status_code == 400


def test_update_id_mismatch_is_400(fhir):
    response = fhir.put("/Patient/pat-1", new_patient(id="pat-2"))
    assert response.status_code == 400
    assert "does not match" in response.json()["issue"][0]["diagnostics"]


def test_update_invalid_id_is_400(fhir):
    assert fhir.put("/Patient/bad_id!", new_patient(id="bad_id!")).status_code == 400


def test_update_with_current_if_match_succeeds(fhir, patient):
    response = fhir.put(f"/Patient/{patient['id']}", patient, headers={"If-Match": 'W/"1"'})
    assert response.status_code == 200


def test_update_with_stale_if_match_is_412_and_changes_nothing(fhir, patient):
    fhir.put(f"/Patient/{patient['id']}", dict(patient, gender="female"))
    response = fhir.put(f"/Patient/{patient['id']}", dict(patient, gender="other"), headers={"If-Match": 'W/"1"'})
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"
    current = fhir.get(f"/Patient/{patient['id']}").json()
    assert current["gender"] == "female" and current["meta"]["versionId"] == "2"


def test_update_invalid_content_keeps_previous_version(fhir, patient):
    response = fhir.put(f"/Patient/{patient['id']}", dict(patient, active="yes"))
    assert response.status_code in (400, 422)
    assert fhir.get(f"/Patient/{patient['id']}").json()["meta"]["versionId"] == "1"


def test_update_after_delete_revives_resource(fhir, patient):
    fhir.delete(f"/Patient/{patient['id']}")
    response = fhir.put(f"/Patient/{patient['id']}", patient)
    assert response.status_code == 201
    assert response.json()["meta"]["versionId"] == "3"
