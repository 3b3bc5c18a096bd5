"""create: POST [base]/[type] (https://hl7.org/fhir/R4/http.html#create)."""
from __future__ import annotations

import pytest

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def test_create_assigns_id_version_and_location(fhir):
    response = fhir.post("/Patient", new_patient(id="client-chosen"))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"  # the server ignores an id on create
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response["ETag"] == 'W/"1"'
    assert response["Location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert "Last-Modified" in response


def test_create_keeps_client_meta_but_sets_version(fhir):
    tag = {"system": "http://example.org/tags", "code": "vip"}
    response = fhir.post("/Patient", new_patient(meta={"versionId": "99", "tag": [tag]}))
    meta = response.json()["meta"]
    assert meta["versionId"] == "1"
    assert meta["tag"] == [tag]


def test_create_prefer_minimal_returns_no_body(fhir):
    response = fhir.post("/Patient", new_patient(), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.content == b""
    assert response["Location"]


def test_create_prefer_operation_outcome(fhir):
    response = fhir.post("/Patient", new_patient(), headers={"Prefer": "return=OperationOutcome"})
    assert response.status_code == 201
    assert response.json()["resourceType"] == "OperationOutcome"


def test_create_with_wrong_resource_type_is_400(fhir):
    response = fhir.post("/Patient", {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_create_unknown_type_is_404(fhir):
    response = fhir.post("/Unicorn", {"resourceType": "Unicorn"})
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-supported"


def test_create_malformed_json_is_400_and_writes_nothing(fhir):
    from fhir_api.store.models import Resource

    response = fhir.post("/Patient", '{"resourceType": "Patient",')
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "structure"
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0


def test_create_invalid_resource_is_422_with_expression(fhir):
    response = fhir.post("/Patient", new_patient(birthDate="25/12/1974"))
    assert response.status_code in (400, 422)
    issues = response.json()["issue"]
    assert any("Patient.birthDate" in e for i in issues for e in i.get("expression", []))


def test_create_unsupported_media_type_is_415(fhir):
    response = fhir.post("/Patient", "name=x", content_type="text/plain")
    assert response.status_code == 415


def test_create_preserves_decimal_precision(fhir):
    obs = {
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "valueQuantity": {"value": 72.50, "unit": "kg"},
    }
    raw = '{"resourceType":"Observation","status":"final","code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"}}'
    response = fhir.post("/Observation", raw)
    assert response.status_code == 201
    assert b'"value":72.50' in response.content
    assert obs["valueQuantity"]["value"] == response.json()["valueQuantity"]["value"]
