"""Every FHIR interaction leaves an AuditEvent with the BALP fields (https://profiles.ihe.net/ITI/BALP/)."""
from __future__ import annotations

import base64
import json

import pytest

from fhir_api.store.models import Resource
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."


def events(subtype: str | None = None) -> list[dict]:
    rows = Resource.objects.filter(resource_type="AuditEvent").order_by("id").values_list("data", flat=True)
    found = [json.loads(r) for r in rows]
    return [e for e in found if subtype is None or e["subtype"][0]["code"] == subtype]


def one(subtype: str) -> dict:
    found = events(subtype)
    assert len(found) == 1, [e["subtype"] for e in events()]
    return found[0]


def entity_refs(event: dict) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", ()) if "reference" in e.get("what", {})]


def agent_codes(event: dict) -> list[str]:
    return [c["code"] for a in event["agent"] for c in a["type"]["coding"]]


def _observation(patient_id: str) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
            "subject": {"reference": f"Patient/{patient_id}"}}


def test_a_read_is_recorded_as_a_balp_patient_read(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    assert fhir.get(f"/Patient/{pid}").status_code == 200
    event = one("read")
    assert event["type"]["code"] == "rest" and event["action"] == "R" and event["outcome"] == "0"
    assert event["meta"]["profile"] == [BALP + "PatientRead"]
    assert event["recorded"].endswith("Z")
    assert entity_refs(event) == [f"Patient/{pid}", f"Patient/{pid}"]  # the patient, then the resource
    assert "110153" in agent_codes(event) and "110152" in agent_codes(event)  # client and server
    client = next(a for a in event["agent"] if a["type"]["coding"][0]["code"] == "110153")
    assert client["network"] == {"address": "127.0.0.1", "type": "2"}
    assert event["source"]["type"][0]["code"] == "4"


def test_a_create_is_recorded_in_its_transaction_with_the_patient_of_the_resource(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    oid = fhir.post("/Observation", _observation(pid)).json()["id"]
    creates = events("create")
    assert len(creates) == 2
    event = creates[1]
    assert event["action"] == "C" and event["outcome"] == "0"
    assert event["meta"]["profile"] == [BALP + "PatientCreate"]
    assert entity_refs(event) == [f"Patient/{pid}", f"Observation/{oid}/_history/1"]


def test_update_patch_delete_vread_and_history_each_leave_their_event(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    fhir.put(f"/Patient/{pid}", {**new_patient(), "id": pid, "gender": "female"})
    fhir.patch(f"/Patient/{pid}", [{"op": "replace", "path": "/gender", "value": "other"}],
               content_type="application/json-patch+json")
    fhir.get(f"/Patient/{pid}/_history/1")
    fhir.get(f"/Patient/{pid}/_history")
    fhir.delete(f"/Patient/{pid}")
    assert one("update")["action"] == "U"
    assert one("patch")["action"] == "U"
    assert entity_refs(one("vread"))[-1] == f"Patient/{pid}/_history/1"
    assert one("history-instance")["action"] == "R"
    deleted = one("delete")
    assert deleted["action"] == "D" and entity_refs(deleted)[-1] == f"Patient/{pid}/_history/4"


def test_a_search_records_its_query_in_base64_and_the_patient_it_names(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    fhir.get("/Observation", patient=pid, code="8867-4")
    event = one("search-type")
    assert event["action"] == "E" and event["meta"]["profile"] == [BALP + "PatientQuery"]
    query = next(e for e in event["entity"] if e["role"]["code"] == "24")
    assert base64.b64decode(query["query"]).decode() == f"patient={pid}&code=8867-4"
    assert entity_refs(event) == [f"Patient/{pid}"]


def test_an_operation_is_recorded_as_execute(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    assert fhir.get(f"/Patient/{pid}/$everything").status_code == 200
    event = one("operation")
    assert event["action"] == "E" and event["subtype"][0]["display"] == "$everything"


def test_a_refused_write_is_recorded_with_outcome_and_description_and_writes_nothing(fhir):
    response = fhir.post("/Patient", {"resourceType": "Patient", "birthDate": "soon"})
    assert response.status_code in (400, 422)
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()
    event = one("create")
    assert event["outcome"] == "4" and "birthDate" in event["outcomeDesc"]
    assert "profile" not in event["meta"]  # BALP's profiles describe successes


def test_a_failed_transaction_leaves_no_create_events_only_its_failure(fhir):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": new_patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "soon"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    assert fhir.post("", bundle).status_code >= 400
    assert events("create") == []
    assert one("transaction")["outcome"] == "4"


def test_each_transaction_and_batch_entry_is_recorded(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _observation(pid), "request": {"method": "POST", "url": "Observation"}},
        {"resource": _observation(pid), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}"}},
    ]}
    assert fhir.post("", bundle).status_code == 200
    assert len(events("create")) == 3  # the patient, then both entries
    assert len(events("read")) == 1
    assert one("transaction")["outcome"] == "0"
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": _observation(pid), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "DELETE", "url": "Observation?_id=,"}},
        {"resource": {"resourceType": "Patient", "birthDate": "soon"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    assert fhir.post("", batch).status_code == 200
    failed = [e for e in events() if e["outcome"] != "0" and e["subtype"][0]["code"] in ("create", "delete")]
    assert len(failed) >= 1
    assert len(events("create")) == 5  # one more success, one failure


def test_a_read_of_a_missing_resource_is_recorded_as_a_failure(fhir):
    assert fhir.get("/Patient/nobody").status_code == 404
    event = one("read")
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("404")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_the_api_refuses_to_change_or_create_audit_events(fhir, method):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    fhir.get(f"/Patient/{pid}")
    audit_id = events("read")[0]["id"]
    before = Resource.objects.get(resource_type="AuditEvent", logical_id=audit_id).data
    body = {"resourceType": "AuditEvent", "id": audit_id, "type": {"code": "rest"}, "recorded": "2020-01-01T00:00:00Z",
            "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    path = "/AuditEvent" if method == "POST" else f"/AuditEvent/{audit_id}"
    if method == "PATCH":
        response = fhir.patch(path, [{"op": "replace", "path": "/outcome", "value": "0"}],
                              content_type="application/json-patch+json")
    elif method == "DELETE":
        response = fhir.delete(path)
    else:
        response = fhir.send(method, path, body)
    assert response.status_code == 405, response.content
    assert response.json()["resourceType"] == "OperationOutcome"
    assert Resource.objects.get(resource_type="AuditEvent", logical_id=audit_id).data == before


def test_a_transaction_may_not_write_audit_events(fhir):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "AuditEvent"}, "request": {"method": "POST", "url": "AuditEvent"}}]}
    assert fhir.post("", bundle).status_code == 405


def test_reading_the_audit_trail_is_not_audited(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    fhir.get(f"/Patient/{pid}")
    count = len(events())
    found = fhir.get("/AuditEvent", patient=pid, _sort="-date").json()
    assert found["total"] == 2  # the create and the read
    fhir.get(f"/AuditEvent/{found['entry'][0]['resource']['id']}")
    assert len(events()) == count
