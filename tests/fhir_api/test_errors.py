"""Errors are OperationOutcomes with the right status (https://hl7.org/fhir/R4/http.html#2.21.0.4)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_method_not_allowed_is_405(fhir, patient):
    response = fhir.post(f"/Patient/{patient['id']}", {"resourceType": "Patient"})
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_path_is_404_operation_outcome(fhir):
    response = fhir.get("/not/a/fhir/path/at/all")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_non_object_body_is_400(fhir):
    assert fhir.post("/Patient", "[1, 2]").status_code == 400


def test_empty_body_is_400(fhir):
    assert fhir.post("/Patient", "").status_code == 400


def test_vread_of_a_version_id_never_assigned_is_404(fhir, patient):
    # versionId is an id, not a number (resource.html#Meta): "abc" is just not known
    assert fhir.get(f"/Patient/{patient['id']}/_history/abc").status_code == 404


def test_if_match_naming_a_version_never_assigned_is_412(fhir, patient):
    assert fhir.put(f"/Patient/{patient['id']}", patient, headers={"If-Match": "nonsense"}).status_code == 412


def test_an_xml_outcome_quoting_a_control_character_is_still_a_4xx(fhir):
    # Found by schemathesis: the diagnostics quoted a U+0004 of the query, which XML cannot
    # carry, and writing the outcome failed (500). It is replaced by U+FFFD instead.
    response = fhir.get("/Patient", _filter="x\x04[y] eq 1", _format="xml")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/fhir+xml")
    assert "\ufffd" in response.content.decode()
