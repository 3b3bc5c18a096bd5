"""Terminology bindings, FHIRPath issue locations and the JSON primitive rules on write and in $validate.

https://hl7.org/fhir/R4/terminologies.html#strength (required: SHALL be in the value set;
extensible: a warning), https://hl7.org/fhir/R4/operationoutcome.html (`expression` is
FHIRPath, `location` carries the same), https://hl7.org/fhir/R4/json.html#primitive and
ele-1 (a primitive with only an id has no content).
"""
from __future__ import annotations

from typing import Any

import pytest

from fhir_api.store import validation
from fhir_api.store.models import Resource

pytestmark = pytest.mark.django_db

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def observation(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, **extra}


def condition(*codings: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p"},
            "clinicalStatus": {"coding": list(codings)}}


def only_issue(response) -> dict[str, Any]:
    assert response.status_code == 422, response.content
    (issue,) = response.json()["issue"]
    return issue


# -- required bindings on every write ------------------------------------------------------


def test_code_outside_a_required_value_set_is_a_422_naming_element_and_value_set(fhir):
    issue = only_issue(fhir.post("/Patient", {"resourceType": "Patient", "gender": "mmale"}))
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == ["Patient.gender"]
    assert "'mmale'" in issue["diagnostics"]
    assert "http://hl7.org/fhir/ValueSet/administrative-gender" in issue["diagnostics"]
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()


def test_bogus_observation_status_is_refused_and_a_real_one_stored(fhir):
    issue = only_issue(fhir.post("/Observation", observation(status="bogus")))
    assert issue["expression"] == ["Observation.status"]
    assert "observation-status" in issue["diagnostics"]
    assert fhir.post("/Observation", observation(status="amended")).status_code == 201


def test_required_binding_inside_data_types_and_backbone_elements(fhir):
    patient = {"resourceType": "Patient", "name": [{"use": "nickname"}, {"use": "nick"}],
               "contact": [{"gender": "other"}, {"gender": "x"}]}
    issues = fhir.post("/Patient", patient).json()["issue"]
    assert {i["expression"][0] for i in issues} == {"Patient.name[1].use", "Patient.contact[1].gender"}


def test_codeable_concept_passes_when_one_coding_is_in_the_required_value_set(fhir):
    other = {"system": "http://example.org/local", "code": "on"}
    assert fhir.post("/Condition", condition(other, {"system": CLINICAL, "code": "active"})).status_code == 201
    issue = only_issue(fhir.post("/Condition", condition(other)))
    assert issue["expression"] == ["Condition.clinicalStatus"]
    assert "http://example.org/local|on" in issue["diagnostics"]


def test_coding_with_the_right_code_in_the_wrong_system_is_refused(fhir):
    wrong = {"system": ABSENT, "code": "active"}
    assert only_issue(fhir.post("/Condition", condition(wrong)))["code"] == "code-invalid"


def test_text_only_codeable_concept_is_not_judged_by_the_binding(fhir):
    resource = {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, "clinicalStatus": {"text": "on"}}
    assert fhir.post("/Condition", resource).status_code == 201


def test_binding_to_codes_the_server_cannot_list_is_not_an_error(fhir):
    # Attachment.contentType is bound (required) to MIME types: BCP-13 is not enumerable.
    patient = {"resourceType": "Patient", "photo": [{"contentType": "image/x-made-up"}]}
    assert fhir.post("/Patient", patient).status_code == 201


def test_required_binding_errors_in_a_transaction_name_the_entry(fhir):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "gender": "female"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": "F"}, "request": {"method": "POST", "url": "Patient"}}]}
    response = fhir.post("", bundle)
    assert response.status_code in (400, 422)
    assert "administrative-gender" in response.content.decode()
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()


# -- extensible bindings: warnings at the full level and in $validate ------------------------


def test_extensible_binding_is_a_warning_in_validate_and_not_a_refusal(fhir):
    resource = observation(dataAbsentReason={"coding": [{"system": "http://example.org/why", "code": "lost"}]})
    issues = fhir.post("/Observation/$validate", resource).json()["issue"]
    assert [(i["severity"], i["expression"]) for i in issues] == [("warning", ["Observation.dataAbsentReason"])]
    assert fhir.post("/Observation", resource).status_code == 201


def test_extensible_binding_in_the_value_set_gives_no_warning() -> None:
    resource = observation(dataAbsentReason={"coding": [{"system": ABSENT, "code": "masked"}]})
    assert validation.check(resource, level="full") == []


def test_standard_level_does_not_report_extensible_bindings(settings) -> None:
    settings.FHIR_VALIDATION_LEVEL = "standard"
    resource = observation(dataAbsentReason={"coding": [{"system": "http://example.org/why", "code": "lost"}]})
    assert validation.check(resource) == []
    settings.FHIR_VALIDATION_LEVEL = "full"
    assert [i["severity"] for i in validation.check(resource)] == ["warning"]


# -- expressions are FHIRPath, and location says the same ------------------------------------


def test_choice_type_is_named_with_of_type(fhir):
    issue = only_issue(fhir.post("/Observation", observation(valueBoolean="yes")))
    assert issue["expression"] == ["Observation.value.ofType(boolean)"]
    assert issue["location"] == issue["expression"]


def test_parameters_value_is_named_with_of_type(fhir):
    body = {"resourceType": "Parameters", "parameter": [{"name": "a", "valueBoolean": "yes"}]}
    issue = only_issue(fhir.put("/Parameters/p1", {**body, "id": "p1"}))
    assert issue["expression"] == ["Parameters.parameter[0].value.ofType(boolean)"]


def test_primitive_extension_problems_are_located_on_the_primitive(fhir):
    patient = {"resourceType": "Patient", "active": True, "_active": "no"}
    issue = only_issue(fhir.post("/Patient", patient))
    assert issue["expression"] == issue["location"] == ["Patient.active"]
    quantity = observation(valueQuantity={"value": 1, "_value": {"extension": [{"url": "x y"}]}})
    issue = only_issue(fhir.post("/Observation", quantity))
    assert issue["expression"] == ["Observation.value.ofType(Quantity).value.extension[0].url"]


def test_validate_reports_fhirpath_expressions_too(fhir):
    issues = fhir.post("/Observation/$validate", observation(valueInteger="1")).json()["issue"]
    assert [i["expression"] for i in issues] == [["Observation.value.ofType(integer)"]]


# -- JSON primitive arrays -------------------------------------------------------------------


def test_null_lined_up_with_an_id_only_companion_is_refused(fhir):
    patient = {"resourceType": "Patient", "name": [{"given": ["Ann", None], "_given": [None, {"id": "g2"}]}]}
    issue = only_issue(fhir.post("/Patient", patient))
    assert issue["expression"] == ["Patient.name[0].given[1]"]
    assert "ele-1" in issue["diagnostics"]


def test_null_lined_up_with_an_extension_is_accepted(fhir):
    ext = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}]}
    patient = {"resourceType": "Patient", "name": [{"given": ["Ann", None], "_given": [None, ext]}]}
    assert fhir.post("/Patient", patient).status_code == 201


def test_single_companion_with_only_an_id_and_no_value_is_refused(fhir):
    issue = only_issue(fhir.post("/Patient", {"resourceType": "Patient", "_birthDate": {"id": "b"}}))
    assert issue["expression"] == ["Patient.birthDate"]
    with_value = {"resourceType": "Patient", "birthDate": "1970", "_birthDate": {"id": "b"}}
    assert fhir.post("/Patient", with_value).status_code == 201
