"""transaction Bundles: all or nothing (https://hl7.org/fhir/R4/http.html#transaction)."""
from __future__ import annotations

import pytest

from fhir_api.store.models import Resource
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

PATIENT_URN = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"


def _tx(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource, full_url=None, **request):
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _observation(subject):
    return {"resourceType": "Observation", "status": "final", "code": {"text": "hr"}, "subject": {"reference": subject}}


def test_transaction_rewrites_urn_uuid_references(fhir):
    response = fhir.post("", _tx(_post(new_patient(), PATIENT_URN), _post(_observation(PATIENT_URN))))
    assert response.status_code == 200, response.content
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    patient_location = bundle["entry"][0]["response"]["location"]
    assert bundle["entry"][0]["response"]["status"] == "201 Created"
    patient_ref = "/".join(patient_location.split("/")[:2])
    obs_id = bundle["entry"][1]["response"]["location"].split("/")[1]
    stored = fhir.get(f"/Observation/{obs_id}").json()
    assert stored["subject"]["reference"] == patient_ref


def test_transaction_rewrites_references_in_extensions_contained_and_narrative(fhir):
    obs = _observation(PATIENT_URN)
    obs["extension"] = [{"url": "http://example.org/ext", "valueReference": {"reference": PATIENT_URN}}]
    obs["contained"] = [{"resourceType": "Provenance", "id": "p1", "recorded": "2020-01-01T00:00:00Z",
                         "target": [{"reference": PATIENT_URN}], "agent": [{"who": {"reference": PATIENT_URN}}]}]
    obs["text"] = {"status": "generated",
                   "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{PATIENT_URN}">patient</a></div>'}
    bundle = fhir.post("", _tx(_post(new_patient(), PATIENT_URN), _post(obs))).json()
    patient_ref = "/".join(bundle["entry"][0]["response"]["location"].split("/")[:2])
    stored = bundle["entry"][1]["resource"]
    assert stored["extension"][0]["valueReference"]["reference"] == patient_ref
    assert stored["contained"][0]["target"][0]["reference"] == patient_ref
    assert stored["contained"][0]["agent"][0]["who"]["reference"] == patient_ref
    assert f'href="{patient_ref}"' in stored["text"]["div"]


def test_transaction_with_urn_oid_full_url(fhir):
    oid = "urn:oid:1.2.3.4.5"
    bundle = fhir.post("", _tx(_post(new_patient(), oid), _post(_observation(oid)))).json()
    patient_ref = "/".join(bundle["entry"][0]["response"]["location"].split("/")[:2])
    assert bundle["entry"][1]["resource"]["subject"]["reference"] == patient_ref


def test_transaction_failing_entry_rolls_back_everything(fhir):
    bad = {"resourceType": "Observation", "status": "not-a-status-and-no-code"}
    response = fhir.post("", _tx(_post(new_patient(), PATIENT_URN), _post(bad)))
    assert response.status_code in (400, 422)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0


def test_transaction_unknown_urn_reference_fails(fhir):
    response = fhir.post("", _tx(_post(_observation("urn:uuid:0000-not-in-bundle"))))
    assert response.status_code == 400
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0


def test_transaction_processes_deletes_before_posts_before_puts_before_gets(fhir, patient):
    pid = patient["id"]
    entries = [
        {"request": {"method": "GET", "url": f"Patient/{pid}"}},
        {"resource": dict(patient, gender="female"), "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        {"request": {"method": "DELETE", "url": "Patient/other"}},
        _post(new_patient()),
    ]
    fhir.put("/Patient/other", new_patient(id="other"))
    bundle = fhir.post("", _tx(*entries)).json()
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["200 OK", "200 OK", "204 No Content", "201 Created"]
    assert bundle["entry"][0]["resource"]["gender"] == "female"  # the GET ran after the PUT
    assert fhir.get("/Patient/other").status_code == 410


def test_transaction_two_entries_for_same_resource_is_an_error(fhir, patient):
    pid = patient["id"]
    entries = [
        {"resource": patient, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
    ]
    response = fhir.post("", _tx(*entries))
    assert response.status_code == 400
    assert fhir.get(f"/Patient/{pid}").status_code == 200


def test_transaction_entry_if_match_stale_fails_whole_transaction(fhir, patient):
    pid = patient["id"]
    entries = [
        _post(new_patient()),
        {"resource": patient, "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'}},
    ]
    response = fhir.post("", _tx(*entries))
    assert response.status_code == 412
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 1


def test_transaction_entry_if_none_match_on_get_gives_304(fhir, patient):
    entries = [{"request": {"method": "GET", "url": f"Patient/{patient['id']}", "ifNoneMatch": 'W/"1"'}}]
    bundle = fhir.post("", _tx(*entries)).json()
    assert bundle["entry"][0]["response"]["status"] == "304 Not Modified"


def test_transaction_put_with_full_url_reference_is_rewritten(fhir):
    full = "http://example.org/fhir/Patient/abc"
    entries = [
        {"fullUrl": full, "resource": new_patient(id="abc"), "request": {"method": "PUT", "url": "Patient/abc"}},
        _post(_observation(full)),
    ]
    bundle = fhir.post("", _tx(*entries)).json()
    assert bundle["entry"][1]["resource"]["subject"]["reference"] == "Patient/abc"


def test_transaction_patch_entry_with_fhirpath_patch(fhir, patient):
    params = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.gender"},
        {"name": "value", "valueCode": "female"}]}]}
    entries = [{"resource": params, "request": {"method": "PATCH", "url": f"Patient/{patient['id']}"}}]
    bundle = fhir.post("", _tx(*entries)).json()
    assert bundle["entry"][0]["response"]["status"] == "200 OK"
    assert fhir.get(f"/Patient/{patient['id']}").json()["gender"] == "female"


def test_transaction_prefer_minimal_leaves_out_resources(fhir):
    bundle = fhir.post("", _tx(_post(new_patient())), headers={"Prefer": "return=minimal"}).json()
    assert "resource" not in bundle["entry"][0]
    assert bundle["entry"][0]["response"]["location"].startswith("Patient/")


def test_post_to_base_needs_batch_or_transaction(fhir):
    assert fhir.post("", {"resourceType": "Bundle", "type": "collection"}).status_code == 400
    assert fhir.post("", new_patient()).status_code == 400


def test_transaction_in_xml(fhir):
    xml = b"""<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>
      <entry><fullUrl value="urn:uuid:1"/><resource><Patient><gender value="male"/></Patient></resource>
        <request><method value="POST"/><url value="Patient"/></request></entry>
    </Bundle>"""
    response = fhir.post("", xml, content_type="application/fhir+xml", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 200, response.content
    assert b"<Bundle" in response.content and b"201 Created" in response.content
