"""403 when a valid token lacks the scope for the interaction (SMART v1 and v2 permissions).

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-clinical-data
-- read/vread/history need `r`, search `s`, create `c`, update and patch `u`, delete `d`;
v1 `read` is `rs`, `write` is `cud`. Each entry of a batch or transaction is checked on
its own, and a transaction with one forbidden entry fails as a whole.
"""
from __future__ import annotations

import pytest

from fhir_api.store.models import Resource
from tests.access_tokens import bearer, mint
from tests.smart_enforcement.conftest import observation

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]


def assert_403(response):
    assert response.status_code == 403, response.content
    assert response.json()["issue"][0]["code"] == "forbidden"


def test_read_needs_r_and_search_needs_s(fhir, world):
    alice = world["alice"]
    assert_403(fhir.get(f"/Patient/{alice}", headers=bearer(mint("system/Patient.s"))))
    assert fhir.get(f"/Patient/{alice}", headers=bearer(mint("system/Patient.r"))).status_code == 200
    assert_403(fhir.get("/Patient", headers=bearer(mint("system/Patient.r"))))
    assert fhir.get("/Patient", headers=bearer(mint("system/Patient.s"))).status_code == 200
    assert_403(fhir.get(f"/Patient/{alice}/_history/1", headers=bearer(mint("system/Patient.s"))))
    assert_403(fhir.get(f"/Patient/{alice}/_history", headers=bearer(mint("system/Patient.s"))))
    assert_403(fhir.get("/Patient/_history", headers=bearer(mint("system/Patient.s"))))


def test_a_scope_for_another_type_gives_403(fhir, world):
    token = bearer(mint("system/Observation.rs"))
    assert_403(fhir.get(f"/Patient/{world['alice']}", headers=token))
    assert_403(fhir.get("/Patient", headers=token))
    assert_403(fhir.get("/", headers=token, _type="Patient,Observation"))
    assert fhir.get("/", headers=token, _type="Observation").status_code == 200


def test_v1_read_allows_reads_and_searches_but_no_writes(fhir, world):
    token = bearer(mint("system/*.read"))
    assert fhir.get(f"/Observation/{world['alice_lab']}", headers=token).status_code == 200
    assert fhir.get("/Observation", headers=token).status_code == 200
    assert_403(fhir.post("/Observation", observation(world["alice"]), headers=token))
    assert_403(fhir.put(f"/Observation/{world['alice_lab']}",
                        {**observation(world["alice"]), "id": world["alice_lab"]}, headers=token))
    assert_403(fhir.patch(f"/Observation/{world['alice_lab']}", [{"op": "replace", "path": "/status", "value": "amended"}],
                          content_type="application/json-patch+json", headers=token))
    assert_403(fhir.delete(f"/Observation/{world['alice_lab']}", headers=token))


def test_each_write_needs_its_own_letter(fhir, world):
    body = observation(world["alice"])
    assert_403(fhir.post("/Observation", body, headers=bearer(mint("system/Observation.ruds"))))
    assert fhir.post("/Observation", body, headers=bearer(mint("system/Observation.c"))).status_code == 201
    target = world["alice_vital"]
    assert_403(fhir.put(f"/Observation/{target}", {**body, "id": target}, headers=bearer(mint("system/Observation.crds"))))
    assert fhir.put(f"/Observation/{target}", {**body, "id": target},
                    headers=bearer(mint("system/Observation.u"))).status_code == 200
    assert_403(fhir.delete(f"/Observation/{target}", headers=bearer(mint("system/Observation.cruds".replace("d", "")))))
    assert fhir.delete(f"/Observation/{target}", headers=bearer(mint("system/Observation.d"))).status_code == 204


def test_conditional_writes_need_their_letters(fhir, world):
    body = observation(world["alice"])
    assert_403(fhir.post("/Observation", body, headers={**bearer(mint("system/Observation.rs")),
                                                          "If-None-Exist": "code=pulse"}))
    assert_403(fhir.send("PUT", "/Observation?_id=" + world["alice_lab"], body, headers=bearer(mint("system/Observation.rs"))))
    assert_403(fhir.client.delete(f"/fhir/Observation?_id={world['alice_lab']}",
                                  HTTP_AUTHORIZATION="Bearer " + mint("system/Observation.rs")))


def test_a_transaction_with_one_forbidden_entry_fails_whole(fhir, world):
    before = Resource.objects.exclude(resource_type="AuditEvent").count()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation(world["alice"]), "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    assert_403(fhir.post("/", bundle, headers=bearer(mint("system/Observation.cruds"))))
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == before
    delete = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": f"Patient/{world['bob']}"}},
    ]}
    assert_403(fhir.post("/", delete, headers=bearer(mint("system/Observation.cruds"))))


def test_batch_entries_are_checked_one_by_one(fhir, world):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{world['alice_lab']}"}},
        {"request": {"method": "GET", "url": f"Patient/{world['alice']}"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    response = fhir.post("/", bundle, headers=bearer(mint("system/Observation.rs")))
    assert response.status_code == 200, response.content
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("403") and statuses[2].startswith("403")


def test_operations_need_the_scope_of_what_they_return_or_change(fhir, world):
    alice = world["alice"]
    assert_403(fhir.get(f"/Patient/{alice}/$everything", headers=bearer(mint("system/Observation.rs"))))
    assert fhir.get(f"/Patient/{alice}/$everything", headers=bearer(mint("system/*.r"))).status_code == 200
    assert_403(fhir.post(f"/Patient/{alice}/$meta-add", {"resourceType": "Parameters", "parameter": [
        {"name": "meta", "valueMeta": {"tag": [{"system": "urn:t", "code": "x"}]}}]},
        headers=bearer(mint("system/*.rs"))))
    assert_403(fhir.post("/$reindex", {"resourceType": "Parameters"}, headers=bearer(mint("system/Patient.cruds"))))
    assert_403(fhir.post("/$reindex", {"resourceType": "Parameters"},
                         headers=bearer(mint("patient/*.cruds", patient=alice))))
