"""`manage.py load`: Synthea folders, ndjson, single resources; all-or-nothing per file; --resume; --workers.

https://hl7.org/fhir/R4/http.html#transaction and https://hl7.org/fhir/uv/bulkdata/ (ndjson) --
each file is one transaction: a file that fails leaves nothing and is reported with its
OperationOutcome. The Synthea-shaped folders come from bench.generate: hospital and
practitioner files, and patient Bundles that refer to them only conditionally, named so
they sort before the hospital files (the loader must order them).
"""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bench.generate import patient_bundle, providers_bundle
from fhir_api.store.models import LoadedFile, Resource

pytestmark = pytest.mark.django_db

PROVIDERS = ("Organization", "Location", "Practitioner", "PractitionerRole")


def synthea_folder(folder: Path, patients: int = 3, seed: int = 7) -> int:
    """Synthea's layout: hospitalInformation*.json, practitionerInformation*.json, patient files.
    Returns how many resources the folder holds."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = providers_bundle(seed)
    hospitals = [e for e in pool["entry"] if e["resource"]["resourceType"] in ("Organization", "Location")]
    people = [e for e in pool["entry"] if e["resource"]["resourceType"] not in ("Organization", "Location")]
    for name, entries in (("hospitalInformation1700000000000.json", hospitals),
                          ("practitionerInformation1700000000000.json", people)):
        (folder / name).write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                                 option=orjson.OPT_INDENT_2))
    total = len(pool["entry"])
    for index in range(patients):
        bundle = patient_bundle(seed, index)
        bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] not in PROVIDERS]
        total += len(bundle["entry"])
        (folder / f"Aaron{index}_Abbott_{index:04d}.json").write_bytes(orjson.dumps(bundle))
    return total


def load(*paths, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("load", *[str(p) for p in paths], stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def failing_load(*paths, **options) -> str:
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("load", *[str(p) for p in paths], stdout=StringIO(), stderr=err, **options)
    return err.getvalue()


def test_a_synthea_folder_loads_with_one_command_hospitals_and_practitioners_first(tmp_path):
    total = synthea_folder(tmp_path / "fhir")
    out, err = load(tmp_path / "fhir")
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == total
    assert f"loaded {total} resources from 5 files" in out and "0 failed" in out
    assert "5/5 files" in err  # the progress line
    encounter = Resource.objects.filter(resource_type="Encounter").first()
    provider = json.loads(encounter.data)["serviceProvider"]["reference"]
    assert provider.startswith("Organization/") and "?" not in provider  # the conditional reference resolved


def test_a_patient_bundle_whose_providers_are_missing_fails_whole_with_its_outcome(tmp_path):
    synthea_folder(tmp_path / "fhir", patients=1)
    patient_file = next((tmp_path / "fhir").glob("Aaron*.json"))
    err = failing_load(patient_file)
    assert f"FAILED {patient_file}" in err
    outcome = json.loads(err.split(f"FAILED {patient_file}: ", 1)[1].splitlines()[0])
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0  # never half a Bundle
    assert not LoadedFile.objects.exists()


def test_resume_skips_the_files_already_loaded(tmp_path):
    total = synthea_folder(tmp_path / "fhir", patients=2)
    load(tmp_path / "fhir")
    out, _ = load(tmp_path / "fhir", resume=True)
    assert "loaded 0 resources from 0 files" in out and "4 skipped as already loaded" in out
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == total


def test_ndjson_single_resources_and_pretty_json_load(tmp_path):
    (tmp_path / "patients.ndjson").write_text(
        '{"resourceType":"Patient","id":"p1","gender":"female"}\n\n{"resourceType":"Patient","gender":"male"}\n')
    (tmp_path / "one.json").write_text(json.dumps({"resourceType": "Organization", "id": "org1", "name": "X"},
                                                  indent=4))
    out, _ = load(tmp_path / "patients.ndjson", tmp_path / "one.json")
    assert "loaded 3 resources from 2 files" in out
    assert set(Resource.objects.values_list("resource_type", "logical_id").filter(logical_id__in=["p1", "org1"])) \
        == {("Patient", "p1"), ("Organization", "org1")}


def test_an_ndjson_file_with_a_bad_line_loads_nothing_and_names_the_line(tmp_path):
    (tmp_path / "bad.ndjson").write_text('{"resourceType":"Patient","id":"ok"}\n{"resourceType":"Patient","birthDate":"yesterday"}\n')
    err = failing_load(tmp_path / "bad.ndjson")
    assert "line 2" in err
    assert not Resource.objects.exists()


def test_a_batch_bundle_with_a_failing_entry_loads_nothing(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "gender": "female"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "yesterday"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    (tmp_path / "batch.json").write_text(json.dumps(bundle))
    err = failing_load(tmp_path / "batch.json")
    assert "Bundle.entry[1]" in err
    assert not Resource.objects.exists()


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        load(tmp_path / "nope")


@pytest.mark.django_db(transaction=True)
def test_workers_load_files_in_parallel_processes(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a database they can share: run with DATABASE_URL=postgres://...")
    total = synthea_folder(tmp_path / "fhir", patients=4)
    out, _ = load(tmp_path / "fhir", workers=2)
    assert f"loaded {total} resources from 6 files" in out
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == total
