"""Export files in the storage BULK_EXPORT_STORAGE names (the `bulk_export` alias of STORAGES).

https://hl7.org/fhir/uv/bulkdata/export.html -- whatever the backend, the manifest's files are
served by the server (requiresAccessToken as for the local filesystem), and cancelling or
expiry removes them from that backend. Two real backends besides the default: Django's
InMemoryStorage and a FileSystemStorage at a folder the options name.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.files.storage import InMemoryStorage, storages

from fhir_api.bulk.storage import ALIAS, export_storage
from fhir_api.store import jobs
from fhir_api.store.models import Job
from tests.conftest import status_path
from tests.fhir_api.test_bulk_export import clinic, export, exported, ids, manifest_of  # noqa: F401
from tests.live import ROOT

pytestmark = pytest.mark.django_db


def use_storage(settings, backend: str, **options) -> None:
    settings.STORAGES = {**settings.STORAGES, ALIAS: {"BACKEND": backend, "OPTIONS": options}}


def stored_files(job_id: str) -> list[str]:
    try:
        return sorted(export_storage().listdir(job_id)[1])
    except FileNotFoundError:
        return []


@pytest.fixture
def in_memory(settings):
    use_storage(settings, "django.core.files.storage.InMemoryStorage")
    assert isinstance(storages[ALIAS], InMemoryStorage)


def test_files_are_saved_in_the_configured_storage_and_served_from_it(fhir, clinic, in_memory, tmp_path):
    kicked = export(fhir, _type="Patient,Observation")
    manifest = manifest_of(fhir, kicked)
    job_id = Job.objects.get().id
    assert stored_files(job_id) == ["Observation-1.ndjson", "Patient-1.ndjson"]
    assert not any((tmp_path / "bulk-export").rglob("*.ndjson"))  # neither there nor left in the spool
    files = exported(fhir, manifest)
    assert ids(files["Patient"]) == {clinic["ann"], clinic["ben"]}
    with export_storage().open(f"{job_id}/Patient-1.ndjson") as handle:
        assert {json.loads(line)["id"] for line in handle.read().splitlines()} == {clinic["ann"], clinic["ben"]}
    assert manifest["requiresAccessToken"] is False  # authentication is off in these tests
    assert all(item["url"].startswith(kicked["Content-Location"] + "/") for item in manifest["output"])


def test_delete_removes_the_files_from_the_configured_storage(fhir, clinic, in_memory):
    kicked = export(fhir)
    manifest_of(fhir, kicked)
    job_id = Job.objects.get().id
    assert stored_files(job_id)
    assert fhir.delete(status_path(kicked)).status_code == 202
    assert stored_files(job_id) == []


def test_expiry_removes_the_files_from_the_configured_storage(fhir, clinic, in_memory):
    kicked = export(fhir)
    manifest_of(fhir, kicked)
    job_id = Job.objects.get().id
    Job.objects.update(expires_at=jobs.now() - timedelta(seconds=1))
    jobs.housekeeping()
    assert Job.objects.get().status == Job.EXPIRED and stored_files(job_id) == []
    assert fhir.get(status_path(kicked)).status_code == 404


def test_a_file_system_storage_at_another_folder_takes_the_files(fhir, clinic, settings, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    use_storage(settings, "django.core.files.storage.FileSystemStorage", location=str(elsewhere))
    kicked = export(fhir, _type="Patient")
    manifest = manifest_of(fhir, kicked)
    job_id = Job.objects.get().id
    assert [p.name for p in (elsewhere / job_id).iterdir()] == ["Patient-1.ndjson"]
    assert not any((tmp_path / "bulk-export").rglob("*.ndjson"))
    assert ids(exported(fhir, manifest)["Patient"]) == {clinic["ann"], clinic["ben"]}
    assert fhir.delete(status_path(kicked)).status_code == 202
    assert not (elsewhere / job_id).exists()


def _storages_from(env: dict[str, str]) -> dict:
    program = "import django, json; django.setup(); from django.conf import settings; " \
              "print(json.dumps(settings.STORAGES['bulk_export']))"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BULK_", "DJANGO_"))}
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True,
                         env={**base, "DJANGO_SETTINGS_MODULE": "fhirproject.settings", **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_settings_name_the_backend_and_its_options(tmp_path):
    assert _storages_from({"BULK_EXPORT_DIR": str(tmp_path)}) == {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}
    assert _storages_from({"BULK_EXPORT_STORAGE": "storages.backends.s3.S3Storage",
                           "BULK_EXPORT_STORAGE_OPTIONS": '{"bucket_name": "exports"}'}) == {
        "BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": "exports"}}
