"""Profiles, extension definitions and FHIR packages (`manage.py load_package`).

https://hl7.org/fhir/R4/profiling.html, https://hl7.org/fhir/R4/extensibility.html and
https://hl7.org/fhir/packages.html -- a package the test builds (a code system, a value set,
an extension, a Patient profile with slices, a pattern, a binding and an invariant, and a
SearchParameter) is loaded; resources claiming the profile are then checked against it on
write and in `$validate`, extensions against their definition, and the SearchParameter works.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.core.management import CommandError, call_command

from fhir_api.store import repository

pytestmark = pytest.mark.django_db

IG = "http://example.org/ig"
PROFILE = f"{IG}/StructureDefinition/strict-patient"
EYES = f"{IG}/StructureDefinition/eyes"
MRN = "http://hospital.example/mrn"
MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"


def _extension() -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "id": "eyes", "url": EYES, "name": "Eyes", "status": "active",
            "kind": "complex-type", "abstract": False, "type": "Extension", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
            "context": [{"type": "element", "expression": "Patient"}],
            "differential": {"element": [
                {"id": "Extension", "path": "Extension", "max": "1"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": EYES},
                {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": "string"}]}]}}


def _profile() -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition", "id": "strict-patient", "url": PROFILE, "name": "StrictPatient",
        "status": "active", "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [
            {"id": "Patient", "path": "Patient", "constraint": [
                {"key": "sp-1", "severity": "error", "human": "A name is needed", "expression": "name.exists()",
                 "source": PROFILE}]},
            {"id": "Patient.extension", "path": "Patient.extension",
             "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}},
            {"id": "Patient.extension:eyes", "path": "Patient.extension", "sliceName": "eyes", "min": 1, "max": "1",
             "type": [{"code": "Extension", "profile": [EYES]}]},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "fixedUri": MRN},
            {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1},
            {"id": "Patient.gender", "path": "Patient.gender", "min": 1,
             "binding": {"strength": "required", "valueSet": f"{IG}/ValueSet/two-genders"}},
            {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
             "patternCodeableConcept": {"coding": [{"system": MARITAL, "code": "M"}]}},
        ]},
    }


def _package(tmp_path: Path, *extra: tuple[str, Any], version: str = "4.0.1") -> Path:
    files = [
        ("package/package.json", {"name": "example.ig", "version": "1.0.0", "fhirVersions": [version]}),
        ("package/ValueSet-two-genders.json", {
            "resourceType": "ValueSet", "id": "two-genders", "url": f"{IG}/ValueSet/two-genders", "status": "active",
            "compose": {"include": [{"system": "http://hl7.org/fhir/administrative-gender",
                                     "concept": [{"code": "female"}, {"code": "male"}]}]}}),
        ("package/StructureDefinition-eyes.json", _extension()),
        ("package/StructureDefinition-strict-patient.json", _profile()),
        ("package/SearchParameter-eyes.json", {
            "resourceType": "SearchParameter", "id": "eyes", "url": f"{IG}/SearchParameter/eyes", "name": "Eyes",
            "status": "active", "description": "Eye colour", "code": "eyes", "base": ["Patient"], "type": "token",
            "expression": f"Patient.extension.where(url='{EYES}').value"}),
        ("package/example/Patient-example.json", {"resourceType": "Patient", "id": "not-loaded"}),
        *extra,
    ]
    path = tmp_path / "example.ig.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files:
            raw = content if isinstance(content, bytes) else orjson.dumps(content)
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def _load(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("load_package", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def loaded(tmp_path) -> None:
    _load(_package(tmp_path))


def patient(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Patient", "meta": {"profile": [PROFILE]}, "name": [{"family": "Lee"}], "gender": "female",
        "identifier": [{"system": "http://other", "value": "1"}, {"system": MRN, "value": "42"}],
        "extension": [{"url": EYES, "valueString": "brown"}],
        "maritalStatus": {"coding": [{"system": MARITAL, "code": "M", "display": "Married"}], "text": "married"},
    }
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def refusal(response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.content
    return [(i["expression"][0], i["diagnostics"]) for i in response.json()["issue"]]


# -- the loader ----------------------------------------------------------------------------------


def test_load_package_writes_the_definitions_and_skips_examples(tmp_path):
    out = _load(_package(tmp_path))
    assert "loaded example.ig 1.0.0" in out
    assert "2 StructureDefinition" in out and "1 SearchParameter" in out and "1 ValueSet" in out
    assert repository.current_version("StructureDefinition", "strict-patient") == 1
    assert repository.current_version("Patient", "not-loaded") is None
    _load(_package(tmp_path))  # again: a new version, nothing duplicated
    assert repository.current_version("StructureDefinition", "strict-patient") == 2


def test_search_parameters_of_a_package_find_what_was_stored_before_and_after(fhir, tmp_path):
    before = fhir.post("/Patient", {"resourceType": "Patient", "extension": [{"url": EYES, "valueString": "green"}]})
    _load(_package(tmp_path))
    after = fhir.post("/Patient", {"resourceType": "Patient", "extension": [{"url": EYES, "valueString": "green"}]})
    found = {e["resource"]["id"] for e in fhir.get("/Patient", eyes="green").json().get("entry", [])}
    assert found == {before.json()["id"], after.json()["id"]}


def test_package_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(CommandError, match="not a"):
        _load(bad)
    with pytest.raises(CommandError, match="not R4"):
        _load(_package(tmp_path, version="5.0.0"))
    with pytest.raises(CommandError, match="cannot read"):
        _load(tmp_path / "missing.tgz")


def test_a_bad_resource_in_a_package_is_refused_and_the_rest_loaded(tmp_path):
    path = _package(tmp_path, ("package/ValueSet-broken.json", {"resourceType": "ValueSet", "status": "bogus"}))
    err = io.StringIO()
    call_command("load_package", str(path), stdout=io.StringIO(), stderr=err)
    assert "ValueSet-broken.json" in err.getvalue()
    assert repository.current_version("StructureDefinition", "strict-patient") == 1


# -- profiles on write -------------------------------------------------------------------------


def test_a_resource_that_conforms_to_its_profile_is_stored(fhir, loaded):
    assert fhir.post("/Patient", patient()).status_code == 201


def test_cardinality_and_slices_of_the_profile(fhir, loaded):
    no_mrn = refusal(fhir.post("/Patient", patient(identifier=[{"system": "http://other", "value": "1"}])))
    assert no_mrn[0][0] == "Patient" and "Patient.identifier:mrn" in no_mrn[0][1] and PROFILE in no_mrn[0][1]
    two = patient(identifier=[{"system": MRN, "value": "1"}, {"system": MRN, "value": "2"}])
    assert "at most 1" in refusal(fhir.post("/Patient", two))[0][1]
    mrn_without_value = refusal(fhir.post("/Patient", patient(identifier=[{"system": MRN}])))
    assert mrn_without_value[0][0] == "Patient.identifier[0]"


def test_required_binding_of_the_profile_uses_the_packaged_value_set(fhir, loaded):
    (where, message), = refusal(fhir.post("/Patient", patient(gender="other")))
    assert where == "Patient.gender" and f"{IG}/ValueSet/two-genders" in message


def test_pattern_of_the_profile(fhir, loaded):
    single = {"coding": [{"system": MARITAL, "code": "S"}]}
    (where, message), = refusal(fhir.post("/Patient", patient(maritalStatus=single)))
    assert where == "Patient.maritalStatus" and "pattern" in message


def test_extension_slice_by_url(fhir, loaded):
    (where, message), = refusal(fhir.post("/Patient", patient(extension=None)))
    assert "Patient.extension:eyes" in message


def test_profile_invariants_at_the_full_level(fhir, loaded, settings):
    assert fhir.post("/Patient", patient(name=None)).status_code == 201
    settings.FHIR_VALIDATION_LEVEL = "full"
    (where, message), = refusal(fhir.post("/Patient", patient(name=None)))
    assert where == "Patient" and message.startswith("sp-1")


def test_unknown_profiles_are_not_checked_on_write(fhir, loaded):
    other = patient(meta={"profile": ["http://example.org/unknown"]}, gender="other", identifier=None)
    assert fhir.post("/Patient", other).status_code == 201


# -- extensions against their definitions ----------------------------------------------------------


def test_extension_value_type_is_checked_against_its_definition(fhir, loaded):
    wrong = {"resourceType": "Patient", "extension": [{"url": EYES, "valueInteger": 3}]}
    (where, message), = refusal(fhir.post("/Patient", wrong))
    assert where == "Patient.extension[0].value.ofType(integer)" and "string" in message
    right = {"resourceType": "Patient", "extension": [{"url": EYES, "valueString": "blue"}]}
    assert fhir.post("/Patient", right).status_code == 201
    unknown = {"resourceType": "Patient", "extension": [{"url": "http://example.org/any", "valueInteger": 3}]}
    assert fhir.post("/Patient", unknown).status_code == 201


def test_extension_values_are_not_checked_when_the_definition_is_not_held(fhir):
    body = {"resourceType": "Patient", "extension": [{"url": EYES, "valueInteger": 3}]}
    assert fhir.post("/Patient", body).status_code == 201


# -- $validate with profile= ------------------------------------------------------------------------


def test_validate_against_a_nominated_profile(fhir, loaded):
    plain = {"resourceType": "Patient", "gender": "female"}
    issues = fhir.post(f"/Patient/$validate?profile={PROFILE}", plain).json()["issue"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert any("Patient.identifier" in i["diagnostics"] for i in errors)
    assert any(i["diagnostics"].startswith("sp-1") for i in errors)  # invariants always in $validate
    good = fhir.post(f"/Patient/$validate?profile={PROFILE}", {k: v for k, v in patient().items() if k != "meta"})
    assert [i["severity"] for i in good.json()["issue"]] == ["information"]


def test_validate_with_an_unknown_profile_is_an_error_not_a_pass(fhir):
    issues = fhir.post("/Patient/$validate?profile=http://example.org/none", {"resourceType": "Patient"}).json()
    assert issues["issue"][0]["severity"] == "error" and issues["issue"][0]["code"] == "not-supported"


def test_validate_with_a_profile_of_another_type(fhir, loaded):
    issues = fhir.post(f"/Observation/$validate?profile={PROFILE}",
                       {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}).json()["issue"]
    assert issues[0]["severity"] == "error" and "constrains Patient" in issues[0]["diagnostics"]
