"""$validate at the type and instance levels (https://hl7.org/fhir/R4/resource-operation-validate.html).

Every verdict on the resource is a 200 with an OperationOutcome; 4xx only when the validation
itself could not be performed.
"""
from __future__ import annotations

from typing import Any

import pytest

from fhir_api.store.models import Resource, ResourceVersion
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

BASE = "http://hl7.org/fhir/StructureDefinition/"


def _issues(response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


def _errors(response) -> list[dict[str, Any]]:
    return [i for i in _issues(response) if i["severity"] in ("error", "fatal")]


def _params(resource: dict | None = None, **values: str) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [{"name": "resource", "resource": resource}] if resource else []
    parameter += [{"name": k, "valueCode" if k == "mode" else "valueUri": v} for k, v in values.items()]
    return {"resourceType": "Parameters", "parameter": parameter}


def test_valid_resource_answers_all_ok(fhir):
    issues = _issues(fhir.post("/Patient/$validate", new_patient()))
    assert issues == [{"severity": "information", "code": "informational", "diagnostics": "All OK"}]


def test_invalid_resource_answers_200_with_error_issues_and_writes_nothing(fhir):
    response = fhir.post("/Patient/$validate", new_patient(gender=5, birthDate="1974-02-31"))
    errors = _errors(response)
    assert {e["expression"][0] for e in errors} == {"Patient.gender", "Patient.birthDate"}
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists() and not ResourceVersion.objects.exclude(resource_type="AuditEvent").exists()


def test_resource_in_a_parameters_body_is_validated(fhir):
    assert _errors(fhir.post("/Patient/$validate", _params(new_patient(unknown=1))))[0]["code"] == "structure"
    assert _issues(fhir.post("/Patient/$validate", _params(new_patient())))[0]["diagnostics"] == "All OK"


def test_resource_type_must_match_the_url(fhir):
    errors = _errors(fhir.post("/Observation/$validate", new_patient()))
    assert "does not match the URL" in errors[0]["diagnostics"]


def test_create_mode_reports_that_a_body_id_would_be_ignored(fhir):
    issues = _issues(fhir.post("/Patient/$validate?mode=create", new_patient(id="mine")))
    assert [i["severity"] for i in issues] == ["information"]
    assert "ignored" in issues[0]["diagnostics"]


def test_update_mode_checks_the_id_against_the_url(fhir, patient):
    pid = patient["id"]
    assert _issues(fhir.post(f"/Patient/{pid}/$validate", _params(patient, mode="update")))[0]["diagnostics"] == \
        "All OK"
    no_id = {k: v for k, v in patient.items() if k != "id"}
    assert _errors(fhir.post(f"/Patient/{pid}/$validate", _params(no_id, mode="update")))[0]["code"] == "required"
    other = {**patient, "id": "someone-else"}
    assert "does not match" in _errors(fhir.post(f"/Patient/{pid}/$validate", _params(other, mode="update")))[0][
        "diagnostics"]


def test_update_mode_checks_if_match_against_the_current_version(fhir, patient):
    path = f"/Patient/{patient['id']}/$validate?mode=update"
    stale = fhir.post(path, patient, headers={"If-Match": 'W/"7"'})
    assert _errors(stale)[0]["code"] == "conflict"
    assert _errors(fhir.post(path, patient, headers={"If-Match": 'W/"1"'})) == []


def test_update_mode_on_a_new_id_says_it_would_create(fhir):
    issues = _issues(fhir.post("/Patient/new-one/$validate?mode=update", new_patient(id="new-one")))
    assert [i["severity"] for i in issues] == ["information"] and "create" in issues[0]["diagnostics"]


def test_update_and_delete_modes_at_type_level_are_400(fhir):
    assert fhir.post("/Patient/$validate?mode=update", new_patient()).status_code == 400
    assert fhir.post("/Patient/$validate", _params(mode="delete")).status_code == 400


def test_unknown_mode_and_missing_resource_are_400(fhir):
    assert fhir.post("/Patient/$validate?mode=merge", new_patient()).status_code == 400
    assert fhir.post("/Patient/$validate", _params(mode="create")).status_code == 400


def test_delete_mode_ignores_content_and_checks_the_version(fhir, patient):
    path = f"/Patient/{patient['id']}/$validate"
    assert _issues(fhir.get(path, mode="delete"))[0]["diagnostics"] == "All OK"
    assert _errors(fhir.get(path, mode="delete", headers={"If-Match": 'W/"3"'}))[0]["code"] == "conflict"
    absent = _issues(fhir.get("/Patient/ghost/$validate", mode="delete"))
    assert absent[0]["severity"] == "information" and "change nothing" in absent[0]["diagnostics"]
    assert fhir.get(f"/Patient/{patient['id']}").status_code == 200  # nothing was deleted


def test_base_profile_is_checked_and_other_profiles_are_an_error_not_a_pass(fhir):
    assert _errors(fhir.post("/Patient/$validate", _params(new_patient(), profile=BASE + "Patient"))) == []
    assert _errors(fhir.post("/Patient/$validate", _params(new_patient(), profile=BASE + "Patient|4.0.1"))) == []
    wrong_type = _errors(fhir.post("/Patient/$validate", _params(new_patient(), profile=BASE + "Observation")))
    assert wrong_type[0]["code"] == "invalid"
    us_core = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    unknown = _errors(fhir.post(f"/Patient/$validate?profile={us_core}", new_patient()))
    assert unknown[0]["code"] == "not-supported" and "not checked" in unknown[0]["diagnostics"]


def test_profiles_the_resource_claims_are_reported_as_not_checked(fhir):
    claimed = new_patient(meta={"profile": ["http://example.org/StructureDefinition/my-patient", BASE + "Patient"]})
    issues = _issues(fhir.post("/Patient/$validate", claimed))
    assert [(i["severity"], i["expression"]) for i in issues] == [("warning", ["Patient.meta.profile[0]"])]
    assert "not checked" in issues[0]["diagnostics"]


def test_errors_come_before_warnings(fhir):
    body = new_patient(gender=5, meta={"profile": ["http://example.org/p"]})
    assert [i["severity"] for i in _issues(fhir.post("/Patient/$validate", body))] == ["error", "warning"]


def test_parameters_resource_can_itself_be_validated(fhir):
    body = {"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "y"}]}
    assert _issues(fhir.post("/Parameters/$validate", body))[0]["diagnostics"] == "All OK"
    bad = {"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": 5}]}
    assert _errors(fhir.post("/Parameters/$validate", bad))


def test_validate_is_not_offered_at_the_system_level(fhir):
    assert fhir.post("/$validate", new_patient()).status_code == 404


def test_unparseable_body_is_400(fhir):
    assert fhir.post("/Patient/$validate", "{not json").status_code == 400
