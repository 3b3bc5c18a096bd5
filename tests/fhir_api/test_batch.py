"""batch Bundles: entries independent (https://hl7.org/fhir/R4/http.html#transaction)."""
from __future__ import annotations

import pytest

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def test_batch_failure_does_not_stop_other_entries(fhir, patient):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": new_patient(), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"resource": {"resourceType": "Patient", "gender": 42}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": f"Patient/{patient['id']}"}},
        {"request": {"method": "DELETE", "url": f"Patient/{patient['id']}"}},
    ]}
    response = fhir.post("", bundle)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in result["entry"]]
    assert statuses[0] == "201" and statuses[1] == "404" and statuses[2] in ("400", "422")
    assert statuses[3] == "200" and statuses[4] == "204"
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert result["entry"][3]["resource"]["id"] == patient["id"]


def test_batch_entry_without_request_is_reported_not_fatal(fhir):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": new_patient()},
        {"resource": new_patient(), "request": {"method": "POST", "url": "Patient"}},
    ]}
    result = fhir.post("", bundle).json()
    assert result["entry"][0]["response"]["status"].startswith("400")
    assert result["entry"][1]["response"]["status"].startswith("201")


def test_batch_history_and_read_entries(fhir, patient):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{patient['id']}/_history"}},
        {"request": {"method": "GET", "url": "metadata"}},
    ]}
    result = fhir.post("", bundle).json()
    assert result["entry"][0]["resource"]["type"] == "history"
    assert result["entry"][1]["resource"]["resourceType"] == "CapabilityStatement"
