"""Bulk Data `$export` at the system, Patient and Group levels: kick-off, status, files.

https://hl7.org/fhir/uv/bulkdata/export.html (2.0.0) -- every kick-off parameter and its
errors, the status flow (202 with X-Progress/Retry-After, 429, 200 manifest, DELETE), file
serving, expiry, and the snapshot at transactionTime. Jobs run in the test's transaction
through the database-polled runner (tests/conftest.py `finish_job`).
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections

from fhir_api.store import jobs, repository
from fhir_api.store.models import Job
from tests.conftest import finish_job, status_path

pytestmark = pytest.mark.django_db

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
STRICT = {"Prefer": "respond-async, handling=strict", "Accept": "application/fhir+json"}


def store(body: dict) -> str:
    return repository.create(body["resourceType"], body).stored.logical_id


def obs(patient: str, code: str = "pulse", **extra) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": code},
            "subject": {"reference": f"Patient/{patient}"}, **extra}


@pytest.fixture
def clinic(db) -> dict[str, str]:
    """Two patients with observations, a practitioner, an organization, and a Group of one."""
    org = store({"resourceType": "Organization", "name": "General Hospital"})
    doc = store({"resourceType": "Practitioner", "name": [{"family": "Careful"}]})
    ann = store({"resourceType": "Patient", "name": [{"family": "Ann"}], "gender": "female",
                 "managingOrganization": {"reference": f"Organization/{org}"}})
    ben = store({"resourceType": "Patient", "name": [{"family": "Ben"}], "gender": "male"})
    ann_pulse = store(obs(ann, "pulse"))
    ann_bp = store(obs(ann, "blood-pressure"))
    ben_pulse = store(obs(ben, "pulse"))
    group = store({"resourceType": "Group", "type": "person", "actual": True,
                   "member": [{"entity": {"reference": f"Patient/{ann}"}},
                              {"entity": {"reference": f"Practitioner/{doc}"}}]})
    return {"org": org, "doc": doc, "ann": ann, "ben": ben, "ann_pulse": ann_pulse, "ann_bp": ann_bp,
            "ben_pulse": ben_pulse, "group": group}


def export(fhir, path: str = "/$export", headers: dict | None = None, **params):
    return fhir.get(path, headers=headers or ASYNC, **params)


def manifest_of(fhir, kicked, headers: dict | None = None) -> dict:
    response = finish_job(fhir, kicked, headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def download(fhir, url: str, headers: dict | None = None) -> list[dict]:
    response = fhir.get(url.split("/fhir", 1)[1], headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+ndjson"
    body = b"".join(response.streaming_content)
    close_quietly(response)
    return [json.loads(line) for line in body.decode().splitlines()]


def close_quietly(response) -> None:
    """Close a streamed response (its file) without the end-of-request signal, on which Django
    closes the database connection: the test's transaction is still open (as the test
    client itself does)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def exported(fhir, manifest: dict, headers: dict | None = None) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in manifest["output"]:
        lines = download(fhir, item["url"], headers)
        assert len(lines) == item["count"]
        assert all(r["resourceType"] == item["type"] for r in lines)
        out.setdefault(item["type"], []).extend(lines)
    return out


def ids(resources: list[dict]) -> set[str]:
    return {r["id"] for r in resources}


def warnings(fhir, manifest: dict) -> list[str]:
    return [issue["diagnostics"] for item in manifest["error"] for oo in download(fhir, item["url"])
            for issue in oo["issue"]]


# -- kick-off and the status flow --------------------------------------------------------------


def test_kick_off_without_prefer_respond_async_is_400(fhir, clinic):
    response = fhir.get("/$export")
    assert response.status_code == 400
    assert "respond-async" in response.json()["issue"][0]["diagnostics"]


def test_system_export_answers_202_then_a_manifest_whose_files_hold_every_resource(fhir, clinic):
    kicked = export(fhir)
    assert kicked.status_code == 202
    assert kicked["Content-Location"].startswith("http://testserver/fhir/_jobs/")
    waiting = fhir.get(status_path(kicked))
    assert waiting.status_code == 202
    assert waiting["X-Progress"].startswith("queued") and waiting["Retry-After"] == "2"
    manifest = manifest_of(fhir, kicked)
    assert manifest["request"] == "http://testserver/fhir/$export"
    assert manifest["requiresAccessToken"] is False
    assert manifest["transactionTime"] and manifest["error"] == []
    files = exported(fhir, manifest)
    assert set(files) == {"Organization", "Practitioner", "Patient", "Observation", "Group"}
    assert ids(files["Patient"]) == {clinic["ann"], clinic["ben"]}
    assert ids(files["Observation"]) == {clinic["ann_pulse"], clinic["ann_bp"], clinic["ben_pulse"]}
    assert files["Patient"][0] == repository.read("Patient", files["Patient"][0]["id"]).content


def test_a_post_kick_off_takes_a_parameters_resource(fhir, clinic):
    kicked = fhir.post("/$export", {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient"}, {"name": "_outputFormat", "valueString": "ndjson"}]},
        headers=ASYNC)
    files = exported(fhir, manifest_of(fhir, kicked))
    assert set(files) == {"Patient"}


def test_deleted_resources_are_not_exported(fhir, clinic):
    repository.delete("Observation", clinic["ben_pulse"])
    files = exported(fhir, manifest_of(fhir, export(fhir, _type="Observation")))
    assert ids(files["Observation"]) == {clinic["ann_pulse"], clinic["ann_bp"]}


@pytest.mark.parametrize("fmt", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_output_formats_that_are_ndjson_are_accepted(fhir, clinic, fmt):
    assert export(fhir, _outputFormat=fmt, _type="Patient").status_code == 202


def test_another_output_format_is_400(fhir, clinic):
    response = export(fhir, _outputFormat="text/csv")
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "not-supported"


def test_type_limits_the_export_and_an_unknown_type_is_400(fhir, clinic):
    files = exported(fhir, manifest_of(fhir, export(fhir, _type="Patient,Organization")))
    assert set(files) == {"Patient", "Organization"}
    assert export(fhir, _type="Patient,Spaceship").status_code == 400


def test_since_exports_only_what_changed_after_it(fhir, clinic):
    cutoff = repository.read("Group", clinic["group"]).last_updated
    later = store(obs(clinic["ben"], "later"))
    files = exported(fhir, manifest_of(fhir, export(fhir, _since=cutoff.isoformat())))
    assert {t: ids(r) for t, r in files.items()} == {"Observation": {later}}


@pytest.mark.parametrize("since", ["yesterday", "2999-01-01T00:00:00Z"])
def test_a_bad_or_future_since_is_400(fhir, clinic, since):
    assert export(fhir, _since=since).status_code == 400


def test_elements_keep_the_named_and_mandatory_elements_and_mark_them_subsetted(fhir, clinic):
    files = exported(fhir, manifest_of(fhir, export(fhir, _type="Patient,Observation", _elements="Patient.gender")))
    patient = files["Patient"][0]
    assert set(patient) == {"resourceType", "id", "meta", "gender"}
    assert any(t.get("code") == "SUBSETTED" for t in patient["meta"]["tag"])
    assert "code" in files["Observation"][0]  # elements of another type only: whole resources


def test_a_malformed_element_is_400(fhir, clinic):
    assert export(fhir, _elements="Spaceship.name").status_code == 400
    assert export(fhir, _elements="name;drop").status_code == 400


def test_type_filter_selects_with_search_queries_or_ed_per_type(fhir, clinic):
    kicked = export(fhir, _type="Observation,Patient", _typeFilter=[
        f"Observation?subject=Patient/{clinic['ben']}", "Observation?code:text=blood", "Patient?gender=female"])
    files = exported(fhir, manifest_of(fhir, kicked))
    assert ids(files["Observation"]) == {clinic["ben_pulse"], clinic["ann_bp"]}
    assert ids(files["Patient"]) == {clinic["ann"]}


@pytest.mark.parametrize("type_filter", [
    "Observation", "Spaceship?x=1", "Observation?nonsense=1", "Observation?_count=1", "Patient?gender=female",
])
def test_a_bad_type_filter_is_400(fhir, clinic, type_filter):
    assert export(fhir, _type="Observation", _typeFilter=type_filter).status_code == 400


def test_unsupported_parameters_are_warnings_or_400_under_strict_handling(fhir, clinic):
    kicked = export(fhir, _type="Patient", includeAssociatedData="LatestProvenanceResources", _until="2020")
    assert [i["severity"] for i in kicked.json()["issue"]] == ["information", "warning", "warning"]
    manifest = manifest_of(fhir, kicked)
    assert manifest["error"][0]["type"] == "OperationOutcome"
    told = warnings(fhir, manifest)
    assert any("includeAssociatedData" in w for w in told) and any("_until" in w for w in told)
    for params in ({"includeAssociatedData": "LatestProvenanceResources"}, {"_until": "2020"}):
        response = export(fhir, headers=STRICT, **params)
        assert response.status_code == 400 and response.json()["issue"][0]["code"] == "not-supported"


# -- Patient and Group levels ------------------------------------------------------------------


def test_patient_export_holds_the_patient_compartments_and_nothing_else(fhir, clinic):
    files = exported(fhir, manifest_of(fhir, export(fhir, "/Patient/$export")))
    # no Organization or Practitioner; the Group is in the compartment (Group.member)
    assert set(files) == {"Patient", "Observation", "Group"}
    assert ids(files["Observation"]) == {clinic["ann_pulse"], clinic["ann_bp"], clinic["ben_pulse"]}


def test_a_type_outside_the_compartment_is_a_warning_or_400_when_strict(fhir, clinic):
    kicked = export(fhir, "/Patient/$export", _type="Patient,Practitioner")
    manifest = manifest_of(fhir, kicked)
    assert set(exported(fhir, manifest)) == {"Patient"}
    assert any("Practitioner" in w for w in warnings(fhir, manifest))
    assert export(fhir, "/Patient/$export", headers=STRICT, _type="Patient,Practitioner").status_code == 400
    assert export(fhir, "/Patient/$export", _type="Practitioner").status_code == 400


def test_group_export_holds_its_patient_members_compartments(fhir, clinic):
    files = exported(fhir, manifest_of(fhir, export(fhir, f"/Group/{clinic['group']}/$export")))
    assert {t: ids(r) for t, r in files.items()} == {
        "Patient": {clinic["ann"]}, "Observation": {clinic["ann_pulse"], clinic["ann_bp"]},
        "Group": {clinic["group"]}}


def test_an_unknown_group_is_404(fhir, clinic):
    assert export(fhir, "/Group/nope/$export").status_code == 404


def test_patient_parameter_narrows_patient_and_group_exports(fhir, clinic):
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": f"Patient/{clinic['ben']}"}}]}
    files = exported(fhir, manifest_of(fhir, fhir.post("/Patient/$export", body, headers=ASYNC)))
    assert {t: ids(r) for t, r in files.items()} == {"Patient": {clinic["ben"]}, "Observation": {clinic["ben_pulse"]}}
    # Ben is not in the Group: nothing of his comes out of it
    manifest = manifest_of(fhir, fhir.post(f"/Group/{clinic['group']}/$export", body, headers=ASYNC))
    assert manifest["output"] == []


@pytest.mark.parametrize("path, method, value", [
    ("/Patient/$export", "GET", None),
    ("/$export", "POST", {"reference": "Patient/x"}),
    ("/Patient/$export", "POST", {"reference": "Observation/x"}),
    ("/Patient/$export", "POST", "Patient/x"),
])
def test_a_misplaced_or_malformed_patient_parameter_is_400(fhir, clinic, path, method, value):
    if method == "GET":
        response = export(fhir, path, patient=f"Patient/{clinic['ann']}")
    else:
        key = "valueReference" if isinstance(value, dict) else "valueString"
        response = fhir.post(path, {"resourceType": "Parameters", "parameter": [{"name": "patient", key: value}]},
                             headers=ASYNC)
    assert response.status_code == 400, response.content


def test_export_is_not_offered_on_other_types(fhir, clinic):
    assert export(fhir, "/Observation/$export").status_code == 404
    assert export(fhir, f"/Patient/{clinic['ann']}/$export").status_code == 404


# -- polling, cancelling, expiry ---------------------------------------------------------------


def test_polling_sooner_than_allowed_is_429_with_retry_after(fhir, clinic, settings):
    settings.BULK_EXPORT_POLL_SECONDS = 60
    kicked = export(fhir)
    assert fhir.get(status_path(kicked)).status_code == 202
    too_soon = fhir.get(status_path(kicked))
    assert too_soon.status_code == 429 and too_soon["Retry-After"] == "60"
    assert too_soon.json()["issue"][0]["code"] == "throttled"


def test_delete_cancels_removes_the_files_and_later_polls_are_404(fhir, clinic, settings, tmp_path):
    kicked = export(fhir)
    manifest = manifest_of(fhir, kicked)
    folder = tmp_path / "bulk-export"
    assert any(folder.rglob("*.ndjson"))
    cancelled = fhir.delete(status_path(kicked))
    assert cancelled.status_code == 202
    assert not any(folder.rglob("*.ndjson"))
    assert fhir.get(status_path(kicked)).status_code == 404
    assert fhir.get(manifest["output"][0]["url"].split("/fhir", 1)[1]).status_code == 404
    assert fhir.delete(status_path(kicked)).status_code == 404


def test_a_queued_export_can_be_cancelled_before_it_runs(fhir, clinic):
    kicked = export(fhir)
    assert fhir.delete(status_path(kicked)).status_code == 202
    assert finish_job(fhir, kicked).status_code == 404
    assert Job.objects.get().status == Job.CANCELLED


def test_files_expire_after_the_ttl(fhir, clinic, tmp_path):
    kicked = export(fhir)
    manifest = manifest_of(fhir, kicked)
    job = Job.objects.get()
    assert job.expires_at - job.finished_at == timedelta(hours=24)
    Job.objects.update(expires_at=jobs.now() - timedelta(seconds=1))
    assert fhir.get(manifest["output"][0]["url"].split("/fhir", 1)[1]).status_code == 404
    assert not any((tmp_path / "bulk-export").rglob("*.ndjson"))
    assert fhir.get(status_path(kicked)).status_code == 404


def test_housekeeping_removes_expired_exports_nobody_asks_for(fhir, clinic, tmp_path):
    manifest_of(fhir, export(fhir))
    Job.objects.update(expires_at=jobs.now() - timedelta(seconds=1))
    jobs.housekeeping()
    assert Job.objects.get().status == Job.EXPIRED
    assert not any((tmp_path / "bulk-export").rglob("*.ndjson"))


def test_a_file_that_is_not_in_the_manifest_is_404(fhir, clinic):
    kicked = export(fhir)
    manifest_of(fhir, kicked)
    assert fhir.get(status_path(kicked) + "/Secret-1.ndjson").status_code == 404
    assert fhir.get("/_jobs/not-a-job").status_code == 404


def test_large_types_are_split_into_several_files(fhir, clinic, settings):
    settings.BULK_EXPORT_FILE_RESOURCES = 2
    manifest = manifest_of(fhir, export(fhir, _type="Observation"))
    assert [(i["type"], i["count"]) for i in manifest["output"]] == [("Observation", 2), ("Observation", 1)]
    assert len(ids(exported(fhir, manifest)["Observation"])) == 3


# -- the snapshot at transactionTime -----------------------------------------------------------


def test_writes_after_the_kick_off_are_not_in_the_export_and_a_since_export_picks_them_up(fhir, clinic):
    kicked = export(fhir, _type="Patient,Observation")
    changed = repository.read("Patient", clinic["ann"]).content
    repository.update("Patient", clinic["ann"], {**changed, "gender": "other"})
    repository.delete("Observation", clinic["ben_pulse"])
    newcomer = store(obs(clinic["ben"], "after"))
    manifest = manifest_of(fhir, kicked)
    files = exported(fhir, manifest)
    assert ids(files["Patient"]) == {clinic["ann"], clinic["ben"]}
    ann = next(p for p in files["Patient"] if p["id"] == clinic["ann"])
    assert ann["gender"] == "female" and ann["meta"]["versionId"] == "1"
    assert ids(files["Observation"]) == {clinic["ann_pulse"], clinic["ann_bp"], clinic["ben_pulse"]}

    since = fhir.get("/$export", headers=ASYNC, _since=manifest["transactionTime"], _type="Patient,Observation")
    later = exported(fhir, manifest_of(fhir, since))
    assert {t: ids(r) for t, r in later.items()} == {"Patient": {clinic["ann"]}, "Observation": {newcomer}}
    assert later["Patient"][0]["gender"] == "other"


# -- deleted: resources deleted since _since ---------------------------------------------------


def deleted_urls(fhir, manifest: dict) -> list[str]:
    """The `request.url`s of the manifest's deleted files (each line a transaction Bundle of
    DELETE entries)."""
    urls = []
    for item in manifest["deleted"]:
        assert item["type"] == "Bundle"
        bundles = download(fhir, item["url"])
        assert len(bundles) == item["count"]
        for bundle in bundles:
            assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction" and bundle["entry"]
            assert all(entry["request"]["method"] == "DELETE" and "resource" not in entry
                       for entry in bundle["entry"])
            urls += [entry["request"]["url"] for entry in bundle["entry"]]
    return sorted(urls)


def since_export(fhir, since: str, path: str = "/$export", headers: dict | None = None, **params) -> dict:
    return manifest_of(fhir, export(fhir, path, headers=headers, _since=since, **params))


def test_a_since_export_lists_the_resources_deleted_since_as_delete_bundles(fhir, clinic):
    repository.delete("Organization", clinic["org"])  # before _since: not listed
    first = manifest_of(fhir, export(fhir))
    assert first["deleted"] == []  # a full export lists no deletions
    repository.delete("Observation", clinic["ben_pulse"])
    repository.delete("Practitioner", clinic["doc"])
    fleeting = store(obs(clinic["ann"], "fleeting"))
    repository.delete("Observation", fleeting)
    repository.delete("Observation", clinic["ann_bp"])  # deleted, then back: it exists, not deleted
    repository.update("Observation", clinic["ann_bp"], {**obs(clinic["ann"], "blood-pressure"), "id": clinic["ann_bp"]})
    manifest = since_export(fhir, first["transactionTime"])
    assert deleted_urls(fhir, manifest) == sorted([f"Observation/{clinic['ben_pulse']}", f"Observation/{fleeting}",
                                                   f"Practitioner/{clinic['doc']}"])
    assert ids(exported(fhir, manifest)["Observation"]) == {clinic["ann_bp"]}


def test_only_the_exported_types_deletions_are_listed(fhir, clinic):
    since = manifest_of(fhir, export(fhir))["transactionTime"]
    repository.delete("Observation", clinic["ben_pulse"])
    repository.delete("Practitioner", clinic["doc"])
    manifest = since_export(fhir, since, _type="Practitioner")
    assert deleted_urls(fhir, manifest) == [f"Practitioner/{clinic['doc']}"]


def test_a_deletion_after_the_kick_off_is_not_in_the_snapshot_s_deleted_list(fhir, clinic):
    since = manifest_of(fhir, export(fhir))["transactionTime"]
    repository.delete("Observation", clinic["ann_pulse"])
    kicked = export(fhir, _since=since, _type="Observation")
    repository.delete("Observation", clinic["ben_pulse"])
    manifest = manifest_of(fhir, kicked)
    assert deleted_urls(fhir, manifest) == [f"Observation/{clinic['ann_pulse']}"]


def test_group_and_patient_exports_list_only_deletions_in_their_patients_compartments(fhir, clinic):
    since = manifest_of(fhir, export(fhir))["transactionTime"]
    for kind, ident in (("Observation", "ann_pulse"), ("Observation", "ben_pulse"), ("Patient", "ben"),
                        ("Practitioner", "doc")):
        repository.delete(kind, clinic[ident])
    group = since_export(fhir, since, f"/Group/{clinic['group']}/$export")
    assert deleted_urls(fhir, group) == [f"Observation/{clinic['ann_pulse']}"]
    everyone = since_export(fhir, since, "/Patient/$export")
    assert deleted_urls(fhir, everyone) == sorted([f"Observation/{clinic['ann_pulse']}",
                                                   f"Observation/{clinic['ben_pulse']}", f"Patient/{clinic['ben']}"])


def test_deletions_of_a_type_with_a_type_filter_are_not_listed_and_the_export_says_so(fhir, clinic):
    since = manifest_of(fhir, export(fhir))["transactionTime"]
    repository.delete("Observation", clinic["ben_pulse"])
    manifest = since_export(fhir, since, _type="Observation", _typeFilter="Observation?code:text=pulse")
    assert manifest["deleted"] == []
    assert any("deleted Observation resources are not listed" in w and "_typeFilter" in w
               for w in warnings(fhir, manifest))


# -- _until (Bulk Data 3.0.0, not 2.0.0) -----------------------------------------------------------


def test_until_is_an_unsupported_parameter_a_warning_or_400_when_strict(fhir, clinic):
    lenient = manifest_of(fhir, export(fhir, _type="Patient", _until="2030-01-01T00:00:00Z"))
    assert any("_until" in w for w in warnings(fhir, lenient))
    assert ids(exported(fhir, lenient)["Patient"]) == {clinic["ann"], clinic["ben"]}
    strict = export(fhir, headers=STRICT, _until="2030-01-01T00:00:00Z")
    assert strict.status_code == 400 and "_until" in strict.json()["issue"][0]["diagnostics"]


def test_the_capability_statement_declares_the_export_operations(fhir):
    statement = fhir.get("/metadata").json()
    assert "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    rest = statement["rest"][0]
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"} in \
        rest["operation"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"} \
        in by_type["Patient"]["operation"]
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"} \
        in by_type["Group"]["operation"]
    assert not any(op["name"] == "export" for op in by_type["Observation"]["operation"])
    assert "$export" in rest["documentation"]
