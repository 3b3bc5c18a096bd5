"""Reference targets: a Reference points at a resource type its element allows.

https://hl7.org/fhir/R4/references.html and `type.targetProfile` of
https://hl7.org/fhir/R4/elementdefinition.html -- `Observation.subject` is Reference(Patient |
Group | Device | Location) in R4. The type is read from the reference (relative, absolute here
or elsewhere, contained `#id`, a Bundle entry's fullUrl) or from `Reference.type` (a logical
reference); a reference to another type is refused on write (422) at every validation level,
as the HL7 validator (Reference_REF_BadTargetType) and HAPI's JPA server (HAPI-0931) refuse it.
"""
from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db

SUBJECT_TYPES = "Device, Group, Location, Patient"


def observation(subject: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, "subject": subject, **more}


def refusal(response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.content
    return [(i["expression"][0], i["diagnostics"]) for i in response.json()["issue"]]


@pytest.mark.parametrize("level", ["standard", "full"])
def test_a_relative_reference_to_a_type_the_element_does_not_allow_is_refused(fhir, settings, level):
    settings.FHIR_VALIDATION_LEVEL = level
    (where, message), = refusal(fhir.post("/Observation", observation({"reference": "Practitioner/1"})))
    assert where == "Observation.subject"
    assert message == f"Observation.subject may reference {SUBJECT_TYPES}, not a Practitioner"


def test_references_to_allowed_types_are_stored_without_fetching_the_target(fhir):
    for subject in ({"reference": "Patient/not-here"}, {"reference": "Group/g1/_history/2"},
                    {"reference": "Device/d"}, {"reference": "Location/l"}):
        assert fhir.post("/Observation", observation(subject)).status_code == 201, subject


def test_absolute_references_carry_their_type_here_and_elsewhere(fhir, settings):
    settings.FHIR_BASE_URL = "https://fhir.example.org/r4"
    for url in ("https://fhir.example.org/r4/Practitioner/1", "https://other.example/fhir/Practitioner/1",
                "https://other.example/fhir/Practitioner/1/_history/3"):
        (where, message), = refusal(fhir.post("/Observation", observation({"reference": url})))
        assert where == "Observation.subject" and message.endswith("not a Practitioner")
    for url in ("https://fhir.example.org/r4/Patient/1", "https://other.example/fhir/Patient/1"):
        assert fhir.post("/Observation", observation({"reference": url})).status_code == 201


def test_other_uris_are_not_judged(fhir):
    for url in ("urn:uuid:0b1f4e2a-9d56-4a0c-8c1d-6a8f1b6d2e11", "urn:oid:1.2.3.4", "https://example.org/people/7"):
        assert fhir.post("/Observation", observation({"reference": url})).status_code == 201, url


def test_a_contained_reference_takes_the_type_of_the_contained_resource(fhir):
    someone = {"resourceType": "Practitioner", "id": "who", "name": [{"family": "Who"}]}
    wrong = observation({"reference": "#who"}, contained=[someone])
    (where, message), = refusal(fhir.post("/Observation", wrong))
    assert where == "Observation.subject" and message.endswith("not a Practitioner")
    right = observation({"reference": "#p"}, contained=[{"resourceType": "Patient", "id": "p", "active": True}])
    assert fhir.post("/Observation", right).status_code == 201


def test_a_reference_to_the_container_from_a_contained_resource(fhir):
    # Inside a contained resource, `#` is the container (references.html#contained).
    contained = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
                 "subject": {"reference": "#"}}
    body = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "r"},
            "result": [{"reference": "#o"}], "contained": [contained]}
    (where, message), = refusal(fhir.post("/DiagnosticReport", body))
    assert where == "DiagnosticReport.contained[0].subject" and message.endswith("not a DiagnosticReport")


def test_a_logical_reference_is_judged_by_its_type(fhir):
    mrn = {"system": "http://hospital.example/staff", "value": "7"}
    (where, message), = refusal(fhir.post("/Observation", observation({"identifier": mrn, "type": "Practitioner"})))
    assert where == "Observation.subject" and message.endswith("not a Practitioner")
    assert fhir.post("/Observation", observation({"identifier": mrn, "type": "Patient"})).status_code == 201
    assert fhir.post("/Observation", observation({"identifier": mrn})).status_code == 201


def test_reference_and_type_must_agree(fhir):
    (where, message), = refusal(fhir.post("/Observation", observation({"reference": "Group/1", "type": "Patient"})))
    assert where == "Observation.subject.type" and "points at a Group" in message


def test_a_relative_reference_must_start_with_a_resource_type(fhir):
    (where, message), = refusal(fhir.post("/Observation", observation({"reference": "Patients/1"})))
    assert where == "Observation.subject" and "R4 resource type" in message


def test_elements_that_take_any_resource_take_any_type(fhir):
    # Observation.focus is Reference(Any).
    body = observation({"reference": "Patient/1"}, focus=[{"reference": "Practitioner/1"}, {"reference": "Claim/2"}])
    assert fhir.post("/Observation", body).status_code == 201


def test_references_in_a_bundle_resolve_through_the_entries_full_urls(fhir):
    practitioner = "urn:uuid:5c9f4c1e-1f6a-4f0e-9f3a-0a4c2d7e8b10"
    patient = "urn:uuid:7d1e2f3a-4b5c-4d6e-8f70-812345678901"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": practitioner, "resource": {"resourceType": "Practitioner", "active": True}},
        {"fullUrl": patient, "resource": {"resourceType": "Patient", "active": True}},
        {"resource": observation({"reference": practitioner})},
    ]}
    (where, message), = refusal(fhir.post("/Bundle", bundle))
    assert where == "Bundle.entry[2].resource.subject" and message.endswith("not a Practitioner")
    bundle["entry"][2]["resource"]["subject"]["reference"] = patient
    assert fhir.post("/Bundle", bundle).status_code == 201


def test_a_transaction_refuses_an_entry_whose_reference_points_at_the_wrong_type(fhir):
    practitioner = "urn:uuid:5c9f4c1e-1f6a-4f0e-9f3a-0a4c2d7e8b10"
    entries = [
        {"fullUrl": practitioner, "resource": {"resourceType": "Practitioner", "active": True},
         "request": {"method": "POST", "url": "Practitioner"}},
        {"resource": observation({"reference": practitioner}), "request": {"method": "POST", "url": "Observation"}},
    ]
    response = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert response.status_code in (400, 422), response.content
    assert "not a Practitioner" in response.content.decode()
    assert fhir.get("/Practitioner").json().get("total", 0) == 0  # nothing half-written


def test_validate_reports_the_wrong_target(fhir):
    outcome = fhir.post("/Observation/$validate", observation({"reference": "Practitioner/1"})).json()
    errors = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert [(i["expression"], i["location"]) for i in errors] == [(["Observation.subject"], ["Observation.subject"])]
