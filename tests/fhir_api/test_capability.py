"""GET /metadata: the CapabilityStatement (https://hl7.org/fhir/R4/http.html#capabilities)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_metadata_describes_r4_server(fhir):
    response = fhir.get("/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert "application/fhir+xml" in statement["format"]
    rest = statement["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert len(types) == 146 and {"Patient", "Observation", "MedicinalProduct"} <= types
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert {"read", "vread", "update", "patch", "delete", "create", "history-instance"} <= codes


def test_metadata_in_xml(fhir):
    response = fhir.get("/metadata", _format="xml")
    assert response.status_code == 200
    assert b"<CapabilityStatement" in response.content
