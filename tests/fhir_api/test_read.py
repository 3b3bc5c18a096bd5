"""read, vread and conditional read (https://hl7.org/fhir/R4/http.html#read)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_read_returns_stored_resource_with_headers(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}")
    assert response.status_code == 200
    assert response.json() == patient
    assert response["Content-Type"].startswith("application/fhir+json")
    assert response["ETag"] == 'W/"1"'
    assert "Last-Modified" in response


def test_read_unknown_id_is_404_operation_outcome(fhir):
    response = fhir.get("/Patient/does-not-exist")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_read_unknown_type_is_404(fhir):
    assert fhir.get("/Unicorn/1").status_code == 404


def test_vread_returns_each_version(fhir, patient):
    changed = dict(patient, gender="female")
    assert fhir.put(f"/Patient/{patient['id']}", changed).status_code == 200
    first = fhir.get(f"/Patient/{patient['id']}/_history/1").json()
    second = fhir.get(f"/Patient/{patient['id']}/_history/2").json()
    assert first["gender"] == "male" and first["meta"]["versionId"] == "1"
    assert second["gender"] == "female" and second["meta"]["versionId"] == "2"
    assert fhir.get(f"/Patient/{patient['id']}/_history/3").status_code == 404


def test_conditional_read_if_none_match_is_304(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response["ETag"] == 'W/"1"'
    assert fhir.get(f"/Patient/{patient['id']}", headers={"If-None-Match": 'W/"0"'}).status_code == 200


def test_conditional_read_if_modified_since(fhir, patient):
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    earlier = "Thu, 01 Jan 1970 00:00:00 GMT"
    assert fhir.get(f"/Patient/{patient['id']}", headers={"If-Modified-Since": later}).status_code == 304
    assert fhir.get(f"/Patient/{patient['id']}", headers={"If-Modified-Since": earlier}).status_code == 200


def test_summary_true_keeps_summary_elements_and_marks_subsetted(fhir):
    body = {"resourceType": "Patient", "name": [{"family": "Doe"}], "photo": [{"contentType": "image/png"}],
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Doe</div>"}}
    pid = fhir.post("/Patient", body).json()["id"]
    summary = fhir.get(f"/Patient/{pid}", _summary="true").json()
    assert summary["name"] == [{"family": "Doe"}]
    assert "photo" not in summary and "text" not in summary
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])


def test_summary_text_and_data(fhir):
    body = {"resourceType": "Patient", "name": [{"family": "Doe"}],
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Doe</div>"}}
    pid = fhir.post("/Patient", body).json()["id"]
    text = fhir.get(f"/Patient/{pid}", _summary="text").json()
    assert "text" in text and "name" not in text
    data = fhir.get(f"/Patient/{pid}", _summary="data").json()
    assert "text" not in data and data["name"] == [{"family": "Doe"}]
    assert fhir.get(f"/Patient/{pid}", _summary="bogus").status_code == 400


def test_elements_returns_listed_and_mandatory_elements(fhir):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "valueString": "v", "note": [{"text": "n"}]}
    oid = fhir.post("/Observation", obs).json()["id"]
    got = fhir.get(f"/Observation/{oid}", _elements="note").json()
    assert got["note"] == [{"text": "n"}]
    assert got["status"] == "final" and got["code"] == {"text": "x"}  # mandatory
    assert "valueString" not in got


def test_head_read_has_headers_without_body(client, patient):
    response = client.head(f"/fhir/Patient/{patient['id']}")
    assert response.status_code == 200
    assert response["ETag"] == 'W/"1"'
