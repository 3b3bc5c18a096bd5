"""Conditional create, update, patch, delete and references (https://hl7.org/fhir/R4/http.html#ccreate)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from fhir_api.store.models import Resource
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

MRN = "http://hospital.example/mrn|12345"


def _count(rtype="Patient"):
    return Resource.objects.filter(resource_type=rtype, deleted=False).count()


def test_conditional_create_without_match_creates(fhir):
    response = fhir.post("/Patient", new_patient(), headers={"If-None-Exist": f"identifier={MRN}"})
    assert response.status_code == 201


def test_conditional_create_with_one_match_returns_it(fhir, patient):
    response = fhir.post("/Patient", new_patient(), headers={"If-None-Exist": f"identifier={MRN}"})
    assert response.status_code == 200
    assert response.json()["id"] == patient["id"]
    assert _count() == 1


def test_conditional_create_with_several_matches_is_412(fhir, patient):
    fhir.post("/Patient", new_patient())
    response = fhir.post("/Patient", new_patient(), headers={"If-None-Exist": f"identifier={MRN}"})
    assert response.status_code == 412
    assert _count() == 2


def test_conditional_update_creates_updates_or_fails(fhir):
    first = fhir.put(f"/Patient?identifier={MRN}", new_patient())
    assert first.status_code == 201
    second = fhir.put(f"/Patient?identifier={MRN}", new_patient(gender="female"))
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["meta"]["versionId"] == "2"
    fhir.post("/Patient", new_patient())
    assert fhir.put(f"/Patient?identifier={MRN}", new_patient()).status_code == 412


def test_conditional_update_body_id_must_match_the_match(fhir, patient):
    response = fhir.put(f"/Patient?identifier={MRN}", new_patient(id="someone-else"))
    assert response.status_code == 400


def test_conditional_delete_single_and_multiple(fhir, patient):
    assert fhir.delete(f"/Patient?identifier={MRN}").status_code == 204
    assert fhir.get(f"/Patient/{patient['id']}").status_code == 410
    fhir.post("/Patient", new_patient())
    fhir.post("/Patient", new_patient())
    assert fhir.delete(f"/Patient?identifier={MRN}").status_code == 412
    assert _count() == 2
    response = fhir.delete(f"/Patient?identifier={MRN}", headers={"Prefer": "handling=multiple-delete"})
    assert response.status_code == 204
    assert _count() == 0


def test_conditional_delete_without_match_is_success(fhir):
    assert fhir.delete("/Patient?identifier=nobody|x").status_code == 204


def test_conditional_patch(fhir, patient):
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    response = fhir.patch(f"/Patient?identifier={MRN}", ops, content_type="application/json-patch+json")
    assert response.status_code == 200
    assert response.json()["gender"] == "female"
    assert fhir.patch("/Patient?identifier=x|y", ops, content_type="application/json-patch+json").status_code == 404


def test_conditional_without_criteria_is_400(fhir):
    assert fhir.put("/Patient", new_patient()).status_code == 400


def _tx(*entries):
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_conditional_reference_resolves_to_single_match(fhir, practitioner):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "performer": [{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9941339108"}]}
    bundle = fhir.post("", _tx({"resource": obs, "request": {"method": "POST", "url": "Observation"}})).json()
    assert bundle["entry"][0]["resource"]["performer"][0]["reference"] == f"Practitioner/{practitioner['id']}"


@pytest.mark.parametrize("copies", [0, 2])
def test_transaction_conditional_reference_with_zero_or_many_matches_is_412(fhir, copies):
    for _ in range(copies):
        fhir.post("/Practitioner", {"resourceType": "Practitioner",
                                    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1"}]})
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "performer": [{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1"}]}
    response = fhir.post("", _tx({"resource": obs, "request": {"method": "POST", "url": "Observation"}}))
    assert response.status_code == 412
    assert _count("Observation") == 0


def test_transaction_if_none_exist_reuses_match_and_rewrites_references(fhir, practitioner):
    urn = "urn:uuid:aa6a7a06-0000-4000-8000-000000000001"
    entries = [
        {"fullUrl": urn, "resource": {"resourceType": "Practitioner"},
         "request": {"method": "POST", "url": "Practitioner",
                     "ifNoneExist": "identifier=http://hl7.org/fhir/sid/us-npi|9941339108"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "performer": [{"reference": urn}]},
         "request": {"method": "POST", "url": "Observation"}},
    ]
    bundle = fhir.post("", _tx(*entries)).json()
    assert bundle["entry"][0]["response"]["status"] == "200 OK"
    assert bundle["entry"][1]["resource"]["performer"][0]["reference"] == f"Practitioner/{practitioner['id']}"
    assert _count("Practitioner") == 1


def test_transaction_conditional_update_entry(fhir, patient):
    entries = [{"resource": new_patient(gender="female"),
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN}"}}]
    bundle = fhir.post("", _tx(*entries)).json()
    assert bundle["entry"][0]["response"]["location"].startswith(f"Patient/{patient['id']}/_history/2")


@pytest.mark.django_db(transaction=True)
def test_parallel_conditional_create_requests_make_one_resource():
    """Six clients POST the same patient with If-None-Exist at once: one 201, five 200."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    import json

    from django.test import Client

    barrier = threading.Barrier(6)
    statuses: list = []
    body = json.dumps(new_patient(identifier=[{"system": "http://hospital.example/mrn", "value": "race"}]))

    def work() -> None:
        try:
            client = Client()
            barrier.wait()
            response = client.post("/fhir/Patient", body, content_type="application/fhir+json",
                                   HTTP_IF_NONE_EXIST="identifier=http://hospital.example/mrn|race")
            statuses.append(response.status_code)
        except Exception as exc:  # asserted below
            statuses.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 200, 200, 200, 200, 201]
    assert Resource.objects.filter(resource_type="Patient").count() == 1


def test_transaction_conditional_reference_to_resource_created_in_same_bundle(fhir):
    npi = {"system": "http://hl7.org/fhir/sid/us-npi", "value": "555"}
    entries = [
        {"fullUrl": "urn:uuid:aa6a7a06-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Practitioner", "identifier": [npi]},
         "request": {"method": "POST", "url": "Practitioner",
                     "ifNoneExist": "identifier=http://hl7.org/fhir/sid/us-npi|555"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "performer": [{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|555"}]},
         "request": {"method": "POST", "url": "Observation"}},
    ]
    bundle = fhir.post("", _tx(*entries)).json()
    practitioner_ref = "/".join(bundle["entry"][0]["response"]["location"].split("/")[:2])
    assert bundle["entry"][1]["resource"]["performer"][0]["reference"] == practitioner_ref
    assert _count("Practitioner") == 1


def test_a_conditional_reference_with_an_if_none_exist_entrys_criteria_searches_once(fhir, practitioner, monkeypatch):
    from fhir_api.rest import conditional

    searches = []
    real = conditional.matches
    monkeypatch.setattr(conditional, "matches", lambda *a, **k: searches.append(a) or real(*a, **k))
    criteria = "identifier=http://hl7.org/fhir/sid/us-npi|9941339108"
    entries = [
        {"resource": {"resourceType": "Practitioner"},
         "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": criteria}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "performer": [{"reference": f"Practitioner?{criteria}"}]},
         "request": {"method": "POST", "url": "Observation"}},
    ]
    bundle = fhir.post("", _tx(*entries)).json()
    assert bundle["entry"][1]["resource"]["performer"][0]["reference"] == f"Practitioner/{practitioner['id']}"
    assert len(searches) == 1  # the ifNoneExist search, reused for the reference (Synthea's shape)
    assert _count("Practitioner") == 1
