"""A patient-context token reaches only its patient's compartment, through every door.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html (patient/ scopes) and
https://hl7.org/fhir/R4/compartmentdefinition-patient.html -- read, search, _include,
_revinclude, :iterate, chains, _has, history, _summary=count, $everything, paging and
writes must neither show nor change another patient's data. What is out of reach answers
404 exactly as what does not exist.
"""
from __future__ import annotations

import pytest

from fhir_api.store import repository
from tests.access_tokens import bearer, make_user, mint
from tests.smart_enforcement.conftest import LAB, observation

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]


@pytest.fixture
def alice_token(world):
    return bearer(mint("patient/*.cruds", patient=world["alice"]))


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(e["resource"]["id"] for e in response.json().get("entry", [])
                  if e.get("search", {}).get("mode") != "outcome" and "resource" in e)


def test_read_of_another_patients_data_is_404_like_a_missing_resource(fhir, world, alice_token):
    assert fhir.get(f"/Patient/{world['alice']}", headers=alice_token).status_code == 200
    other = fhir.get(f"/Patient/{world['bob']}", headers=alice_token)
    missing = fhir.get("/Patient/does-not-exist", headers=alice_token)
    assert other.status_code == missing.status_code == 404
    assert fhir.get(f"/Observation/{world['bob_lab']}", headers=alice_token).status_code == 404
    assert fhir.get(f"/Observation/{world['bob_lab']}/_history/1", headers=alice_token).status_code == 404
    assert fhir.get(f"/Observation/{world['bob_lab']}/_history", headers=alice_token).status_code == 404


def test_shared_types_outside_the_compartment_are_readable_but_not_writable(fhir, world, alice_token):
    """SMART_PATIENT_SHARED_TYPES: Practitioner, Organization, Medication... are not patient
    data; a patient app reads the doctor its records name (US Core), and cannot change them."""
    assert fhir.get(f"/Practitioner/{world['doc']}", headers=alice_token).status_code == 200
    assert ids(fhir.get("/Practitioner", headers=alice_token)) == [world["doc"]]
    found = ids(fhir.get("/Patient", headers=alice_token, _include="Patient:general-practitioner"))
    assert found == sorted([world["alice"], world["doc"]])
    changed = {"resourceType": "Practitioner", "id": world["doc"], "name": [{"family": "Changed"}]}
    assert fhir.put(f"/Practitioner/{world['doc']}", changed, headers=alice_token).status_code == 403
    assert fhir.post("/Practitioner", {"resourceType": "Practitioner"}, headers=alice_token).status_code == 403
    assert fhir.delete(f"/Practitioner/{world['doc']}", headers=alice_token).status_code == 403


def test_without_shared_types_resources_outside_every_compartment_are_out_of_reach(fhir, world, alice_token,
                                                                                     settings):
    settings.SMART_PATIENT_SHARED_TYPES = frozenset()
    assert fhir.get(f"/Practitioner/{world['doc']}", headers=alice_token).status_code == 404
    assert ids(fhir.get("/Practitioner", headers=alice_token)) == []


def test_search_and_counts_show_only_the_patients_data(fhir, world, alice_token):
    assert ids(fhir.get("/Observation", headers=alice_token)) == sorted([world["alice_lab"], world["alice_vital"]])
    assert ids(fhir.get("/Patient", headers=alice_token)) == [world["alice"]]
    count = fhir.get("/Observation", headers=alice_token, _summary="count").json()
    assert count["total"] == 2
    total = fhir.get("/Observation", headers=alice_token, _total="accurate", _count="1").json()
    assert total["total"] == 2
    assert ids(fhir.get("/", headers=alice_token, _type="Observation,Encounter")) == sorted(
        [world["alice_lab"], world["alice_vital"], world["alice_enc"]])


def test_paging_never_reaches_another_patient(fhir, world, alice_token):
    seen = []
    response = fhir.get("/Observation", headers=alice_token, _count="1")
    while True:
        seen += ids(response)
        nxt = [link["url"] for link in response.json()["link"] if link["relation"] == "next"]
        if not nxt:
            break
        response = fhir.client.get(nxt[0].replace("http://testserver", ""), **fhir._headers(alice_token))
    assert sorted(seen) == sorted([world["alice_lab"], world["alice_vital"]])


def test_include_revinclude_and_iterate_stay_in_the_compartment(fhir, world, alice_token):
    found = ids(fhir.get("/Observation", headers=alice_token, _id=world["alice_lab"],
                         _include="Observation:encounter"))
    assert found == sorted([world["alice_lab"], world["alice_enc"]])
    found = ids(fhir.get("/Patient", headers=alice_token, _revinclude="Observation:subject"))
    assert world["bob_lab"] not in found and world["alice_lab"] in found
    # Bob's panel has Alice's observation as a member: iterating back must not add Bob's panel.
    found = ids(fhir.get("/Observation", headers=alice_token, _id=world["alice_lab"],
                         **{"_revinclude:iterate": "Observation:has-member"}))
    assert world["bob_panel"] not in found
    found = ids(fhir.get("/Encounter", headers=alice_token, _revinclude="Observation:encounter"))
    assert world["bob_lab"] not in found and world["bob_enc"] not in found


def test_chains_and_has_cannot_probe_another_patient(fhir, world, alice_token):
    assert ids(fhir.get("/Observation", headers=alice_token, **{"subject:Patient.family": "Beta"})) == []
    assert ids(fhir.get("/Observation", headers=alice_token, **{"subject:Patient.family": "Alpha"})) == sorted(
        [world["alice_lab"], world["alice_vital"]])
    assert ids(fhir.get("/Patient", headers=alice_token, **{"_has:Observation:subject:_id": world["bob_lab"]})) == []
    assert ids(fhir.get("/Patient", headers=alice_token, **{"general-practitioner.family": "Careful"})) == [
        world["alice"]]  # the Practitioner is a shared type; the Patient side stays narrowed
    # From the shared side, _has may not look into another patient's record.
    assert ids(fhir.get("/Practitioner", headers=alice_token, **{"_has:Patient:general-practitioner:family": "Beta"})) == []
    assert ids(fhir.get("/Practitioner", headers=alice_token, **{"_has:Patient:general-practitioner:family": "Alpha"})) == [
        world["doc"]]


def test_history_shows_only_the_patients_versions(fhir, world, alice_token):
    repository.update("Observation", world["bob_lab"], {**observation(world["bob"], LAB), "id": world["bob_lab"]})
    for path in ("/Observation/_history", "/_history"):
        bundle = fhir.get(path, headers=alice_token).json()
        seen = {e["fullUrl"].rsplit("/", 1)[1] for e in bundle.get("entry", [])}
        assert seen and world["bob_lab"] not in seen and world["bob"] not in seen


def test_everything_and_compartment_search_stay_with_the_patient(fhir, world, alice_token):
    found = ids(fhir.get(f"/Patient/{world['alice']}/$everything", headers=alice_token))
    assert world["alice_lab"] in found and world["bob_lab"] not in found and world["bob"] not in found
    assert world["doc"] in found  # the Practitioner Alice's record names (a shared type)
    assert fhir.get(f"/Patient/{world['bob']}/$everything", headers=alice_token).status_code == 404
    assert ids(fhir.get(f"/Patient/{world['bob']}/Observation", headers=alice_token)) == []


def test_a_patient_token_cannot_write_outside_the_compartment(fhir, world, alice_token):
    created = fhir.post("/Observation", observation(world["alice"]), headers=alice_token)
    assert created.status_code == 201
    before = repository.read("Observation", world["bob_lab"]).version_id
    assert fhir.post("/Observation", observation(world["bob"]), headers=alice_token).status_code == 403
    # Moving Alice's observation to Bob, or overwriting Bob's, is refused and changes nothing.
    moved = {**observation(world["bob"]), "id": world["alice_vital"]}
    assert fhir.put(f"/Observation/{world['alice_vital']}", moved, headers=alice_token).status_code == 403
    assert repository.read("Observation", world["alice_vital"]).content["subject"]["reference"].endswith(world["alice"])
    taken = {**observation(world["alice"]), "id": world["bob_lab"]}
    assert fhir.put(f"/Observation/{world['bob_lab']}", taken, headers=alice_token).status_code == 403
    assert fhir.delete(f"/Observation/{world['bob_lab']}", headers=alice_token).status_code == 403
    assert repository.read("Observation", world["bob_lab"]).version_id == before
    patched = fhir.patch(f"/Observation/{world['alice_vital']}",
                         [{"op": "replace", "path": "/subject/reference", "value": f"Patient/{world['bob']}"}],
                         content_type="application/json-patch+json", headers=alice_token)
    assert patched.status_code == 403


def test_a_transaction_that_touches_another_patient_fails_whole(fhir, world, alice_token):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation(world["alice"]), "request": {"method": "POST", "url": "Observation"}},
        {"resource": observation(world["bob"]), "request": {"method": "POST", "url": "Observation"}},
    ]}
    response = fhir.post("/", bundle, headers=alice_token)
    assert response.status_code == 403
    assert ids(fhir.get("/Observation", headers=bearer(mint("system/*.rs")), subject=f"Patient/{world['alice']}")) \
        == sorted([world["alice_lab"], world["alice_vital"]])


def test_a_patient_user_sees_their_own_compartment_under_user_scopes(fhir, world):
    person = make_user("alice")
    token = bearer(mint("user/*.rs", user=person, fhir_user=f"Patient/{world['alice']}"))
    assert ids(fhir.get("/Patient", headers=token)) == [world["alice"]]
    assert fhir.get(f"/Observation/{world['bob_lab']}", headers=token).status_code == 404


def test_a_practitioner_user_sees_what_the_scopes_allow(fhir, world):
    person = make_user("doc")
    token = bearer(mint("user/Patient.rs", user=person, fhir_user=f"Practitioner/{world['doc']}"))
    assert ids(fhir.get("/Patient", headers=token)) == sorted([world["alice"], world["bob"]])


def test_a_person_with_no_fhir_identity_gets_nothing_from_user_scopes(fhir, world):
    token = bearer(mint("user/*.rs", user=make_user("nobody")))
    assert fhir.get("/Patient", headers=token).status_code == 403  # fails closed


def test_a_v2_query_restricted_scope_narrows_results_exactly(fhir, world):
    scope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    token = bearer(mint(scope, patient=world["alice"]))
    assert ids(fhir.get("/Observation", headers=token)) == [world["alice_lab"]]
    assert fhir.get(f"/Observation/{world['alice_vital']}", headers=token).status_code == 404
    assert fhir.get("/Observation", headers=token, _summary="count").json()["total"] == 1


def test_conditional_writes_match_only_what_the_token_may_change(fhir, world, alice_token):
    """PUT/PATCH/DELETE [type]?criteria under a patient token never reach another patient's
    resource: out of reach, it matches nothing (update creates, patch is 404, delete is a no-op)."""
    before = repository.read("Observation", world["bob_lab"])
    criteria = f"/Observation?_id={world['bob_lab']}"
    updated = fhir.send("PUT", criteria, observation(world["alice"]), headers=alice_token)
    assert updated.status_code == 201 and updated.json()["id"] != world["bob_lab"]
    patched = fhir.send("PATCH", criteria, [{"op": "replace", "path": "/status", "value": "amended"}],
                        content_type="application/json-patch+json", headers=alice_token)
    assert patched.status_code == 404
    assert fhir.send("DELETE", criteria, None, headers=alice_token).status_code == 204
    after = repository.read("Observation", world["bob_lab"])
    assert (after.version_id, after.deleted) == (before.version_id, False)


def test_conditional_update_with_another_patients_id_in_the_body_is_refused(fhir, world, alice_token):
    body = {**observation(world["alice"]), "id": world["bob_lab"]}
    response = fhir.send("PUT", "/Observation?code=nothing-matches", body, headers=alice_token)
    assert response.status_code == 403
    assert repository.read("Observation", world["bob_lab"]).version_id == 1


def test_a_patch_of_another_patients_resource_is_refused_before_it_runs(fhir, world, alice_token):
    # A JSON Patch `test` op would otherwise answer 422 or 403 depending on Bob's data.
    probe = [{"op": "test", "path": "/status", "value": "final"},
             {"op": "replace", "path": "/subject/reference", "value": f"Patient/{world['alice']}"}]
    wrong = [{"op": "test", "path": "/status", "value": "preliminary"}] + probe[1:]
    answers = {fhir.patch(f"/Observation/{world['bob_lab']}", p, content_type="application/json-patch+json",
                          headers=alice_token).status_code for p in (probe, wrong)}
    assert answers == {403}


def test_a_transaction_cannot_update_another_patients_resource_by_criteria(fhir, world, alice_token):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation(world["alice"]), "request": {"method": "PUT", "url": f"Observation?_id={world['bob_lab']}"}},
        {"request": {"method": "DELETE", "url": f"Observation?_id={world['bob_lab']}"}},
    ]}
    assert fhir.post("/", bundle, headers=alice_token).status_code in (200, 400, 412)
    after = repository.read("Observation", world["bob_lab"])
    assert (after.version_id, after.deleted) == (1, False)


def test_another_patients_deleted_resource_answers_404_not_410(fhir, world, alice_token):
    repository.delete("Observation", world["bob_lab"])
    assert fhir.get(f"/Observation/{world['bob_lab']}", headers=alice_token).status_code == 404
    assert fhir.get(f"/Observation/{world['bob_lab']}/_history/1", headers=alice_token).status_code == 404
    assert fhir.get(f"/Observation/{world['bob_lab']}", headers=bearer(mint("system/*.rs"))).status_code == 410
