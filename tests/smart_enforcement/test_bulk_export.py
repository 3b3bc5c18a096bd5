"""`$export` under SMART: scopes per exported type, an export of only what the token may read,
and status and file URLs for the requesting client only.

https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-kick-off-request and
https://hl7.org/fhir/smart-app-launch/backend-services.html -- a kick-off needs `system/`
(or `user/`) read scopes for what it exports; `requiresAccessToken` is true; another
client asking for the status or a file gets 404, as for an export that does not exist.
"""
from __future__ import annotations

import pytest

from tests.access_tokens import bearer, make_client, make_user, mint
from tests.conftest import finish_job, status_path
from tests.fhir_api.test_bulk_export import download, exported, ids
from tests.smart_enforcement.conftest import LAB

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]

ASYNC = {"Prefer": "respond-async"}


def kick(fhir, token: str, path: str = "/$export", **params):
    return fhir.get(path, headers={**ASYNC, **bearer(token)}, **params)


def manifest(fhir, kicked, token: str) -> dict:
    response = finish_job(fhir, kicked, bearer(token))
    assert response.status_code == 200, response.content
    return response.json()


def test_kick_off_without_a_token_is_401(fhir, world):
    assert fhir.get("/$export", headers=ASYNC).status_code == 401


def test_each_asked_type_needs_a_read_scope(fhir, world):
    token = mint("system/Patient.rs")
    response = kick(fhir, token, _type="Patient,Observation")
    assert response.status_code == 403 and "Observation" in response.json()["issue"][0]["diagnostics"]
    assert kick(fhir, mint("system/Patient.s"), _type="Patient").status_code == 403


def test_without_type_the_export_holds_the_types_the_token_may_read(fhir, world):
    token = mint("system/Patient.rs system/Encounter.r")
    result = manifest(fhir, kick(fhir, token), token)
    assert result["requiresAccessToken"] is True
    files = exported(fhir, result, bearer(token))
    assert set(files) == {"Patient", "Encounter"}


def test_patient_scopes_cannot_export(fhir, world):
    response = kick(fhir, mint("patient/*.rs", patient=world["alice"]), "/Patient/$export")
    assert response.status_code == 403


def test_a_query_restricted_scope_exports_only_the_matching_resources(fhir, world):
    code = LAB["coding"][0]
    token = mint(f"system/Observation.rs?category={code['system']}|{code['code']}")
    files = exported(fhir, manifest(fhir, kick(fhir, token, _type="Observation"), token), bearer(token))
    assert ids(files["Observation"]) == {world["alice_lab"], world["bob_lab"], world["bob_panel"]}


def test_a_patient_user_exports_only_their_own_compartment(fhir, world):
    person = make_user("alice-user")
    token = mint("user/*.rs", user=person, fhir_user=f"Patient/{world['alice']}")
    files = exported(fhir, manifest(fhir, kick(fhir, token, "/Patient/$export"), token), bearer(token))
    assert ids(files["Patient"]) == {world["alice"]}
    assert ids(files["Observation"]) == {world["alice_lab"], world["alice_vital"]}
    assert ids(files["Encounter"]) == {world["alice_enc"]}


def test_status_and_files_need_a_token_of_the_same_client(fhir, world):
    app = make_client("exporter")
    token = mint("system/*.rs", client=app)
    kicked = kick(fhir, token, _type="Patient")
    result = manifest(fhir, kicked, token)
    url = result["output"][0]["url"]
    path = url.split("/fhir", 1)[1]
    # the same client with another token: allowed
    again = mint("system/Patient.rs", client=app)
    assert fhir.get(status_path(kicked), headers=bearer(again)).status_code == 200
    assert len(download(fhir, url, bearer(again))) == 2
    # without a token: 401; another client: 404, for the status, the files and DELETE
    assert fhir.get(status_path(kicked)).status_code == 401
    assert fhir.get(path).status_code == 401
    stranger = mint("system/*.rs")
    assert fhir.get(status_path(kicked), headers=bearer(stranger)).status_code == 404
    assert fhir.get(path, headers=bearer(stranger)).status_code == 404
    assert fhir.delete(status_path(kicked), headers=bearer(stranger)).status_code == 404
    assert fhir.delete(status_path(kicked), headers=bearer(token)).status_code == 202


def test_another_user_of_the_same_client_cannot_see_the_export(fhir, world):
    app = make_client("ehr")
    doctor = make_user("doctor", staff=True)
    nurse = make_user("nurse", staff=True)
    token = mint("user/*.rs", client=app, user=doctor)
    kicked = kick(fhir, token, _type="Patient")
    manifest(fhir, kicked, token)
    other = mint("user/*.rs", client=app, user=nurse)
    assert fhir.get(status_path(kicked), headers=bearer(other)).status_code == 404


def test_an_export_keeps_its_access_after_the_token_expires(fhir, world):
    """The job runs with the access the kick-off had (a backend token lives 5 minutes)."""
    app = make_client("slow")
    token = mint("system/Patient.rs", client=app)
    kicked = kick(fhir, token)
    fresh = mint("system/Patient.rs", client=app)
    files = exported(fhir, manifest(fhir, kicked, fresh), bearer(fresh))
    assert set(files) == {"Patient"}


def test_deletions_are_listed_only_for_types_the_token_reaches_whole(fhir, world):
    from fhir_api.store import repository

    everything = mint("system/*.rs")
    since = manifest(fhir, kick(fhir, everything, _type="Observation"), everything)["transactionTime"]
    repository.delete("Observation", world["bob_lab"])
    whole = manifest(fhir, kick(fhir, everything, _type="Observation", _since=since), everything)
    bundles = [b for item in whole["deleted"] for b in download(fhir, item["url"], bearer(everything))]
    assert [e["request"]["url"] for b in bundles for e in b["entry"]] == [f"Observation/{world['bob_lab']}"]

    code = LAB["coding"][0]
    narrow = mint(f"system/Observation.rs?category={code['system']}|{code['code']}")
    partial = manifest(fhir, kick(fhir, narrow, _type="Observation", _since=since), narrow)
    assert partial["deleted"] == []  # a deleted resource cannot be checked against the scope's query
    notes = [i["diagnostics"] for item in partial["error"] for oo in download(fhir, item["url"], bearer(narrow))
             for i in oo["issue"]]
    assert any("deleted Observation resources are not listed" in n for n in notes)
