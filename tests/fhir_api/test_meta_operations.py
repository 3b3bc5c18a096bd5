"""$meta, $meta-add and $meta-delete.

https://hl7.org/fhir/R4/resource-operation-meta.html,
https://hl7.org/fhir/R4/resource-operation-meta-add.html and
https://hl7.org/fhir/R4/resource-operation-meta-delete.html
"""
from __future__ import annotations

from typing import Any

import pytest

from fhir_api.store.models import ResourceVersion
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

TAG = {"system": "http://example.org/tags", "code": "needs-review", "display": "Needs review"}
LABEL = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
PROFILE = "http://example.org/StructureDefinition/my-patient"


def _meta_params(**meta: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": meta}]}


def _returned(response) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resourceType"] == "Parameters"
    (param,) = body.get("parameter", [{"name": "return", "valueMeta": {}}])
    assert param["name"] == "return"
    return param["valueMeta"]


def test_instance_meta_is_the_current_versions_meta(fhir, patient):
    meta = _returned(fhir.get(f"/Patient/{patient['id']}/$meta"))
    assert meta == patient["meta"]


def test_instance_meta_of_unknown_or_deleted_resource_is_404_or_410(fhir, patient):
    assert fhir.get("/Patient/nobody/$meta").status_code == 404
    fhir.delete(f"/Patient/{patient['id']}")
    assert fhir.get(f"/Patient/{patient['id']}/$meta").status_code == 410


def test_meta_add_adds_tags_labels_and_profiles_as_sets(fhir, patient):
    path = f"/Patient/{patient['id']}/$meta-add"
    meta = _returned(fhir.post(path, _meta_params(tag=[TAG], security=[LABEL], profile=[PROFILE])))
    assert meta["tag"] == [TAG] and meta["security"] == [LABEL] and meta["profile"] == [PROFILE]
    # The same tag with another display (and version) is the same tag: no duplicate.
    again = _returned(fhir.post(path, _meta_params(tag=[{**TAG, "display": "other", "version": "2"}])))
    assert again["tag"] == [TAG]
    stored = fhir.get(f"/Patient/{patient['id']}").json()
    assert stored["meta"]["tag"] == [TAG] and stored["name"] == patient["name"]


def test_meta_add_writes_a_new_version_and_keeps_history(fhir, patient):
    meta = _returned(fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG])))
    assert meta["versionId"] == "2"
    assert "tag" not in fhir.get(f"/Patient/{patient['id']}/_history/1").json()["meta"]
    assert fhir.get(f"/Patient/{patient['id']}/_history/2").json()["meta"]["tag"] == [TAG]
    response = fhir.get(f"/Patient/{patient['id']}")
    assert response["ETag"] == 'W/"2"'


def test_meta_add_that_changes_nothing_writes_nothing(fhir, patient):
    path = f"/Patient/{patient['id']}/$meta-add"
    fhir.post(path, _meta_params(tag=[TAG]))
    meta = _returned(fhir.post(path, _meta_params(tag=[TAG])))
    assert meta["versionId"] == "2"
    assert ResourceVersion.objects.filter(logical_id=patient["id"]).count() == 2


def test_added_tags_are_searchable(fhir, patient):
    fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG]))
    bundle = fhir.get("/Patient", _tag=f"{TAG['system']}|{TAG['code']}").json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [patient["id"]]


def test_meta_delete_removes_by_system_and_code_and_leaves_the_rest(fhir, patient):
    other_tag = {"system": "http://example.org/tags", "code": "keep"}
    fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG, other_tag], security=[LABEL],
                                                                   profile=[PROFILE]))
    meta = _returned(fhir.post(f"/Patient/{patient['id']}/$meta-delete", _meta_params(
        tag=[{"system": TAG["system"], "code": TAG["code"]}], security=[LABEL], profile=[PROFILE])))
    assert meta["tag"] == [other_tag]
    assert "security" not in meta and "profile" not in meta  # no empty arrays
    assert fhir.get("/Patient", _tag=f"{TAG['system']}|{TAG['code']}").json().get("entry", []) == []


def test_meta_delete_of_absent_tags_is_not_an_error(fhir, patient):
    meta = _returned(fhir.post(f"/Patient/{patient['id']}/$meta-delete", _meta_params(tag=[TAG])))
    assert meta["versionId"] == "1"


def test_meta_add_honours_if_match(fhir, patient):
    response = fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG]),
                         headers={"If-Match": 'W/"9"'})
    assert response.status_code == 412


def test_meta_add_needs_post_and_a_meta(fhir, patient):
    assert fhir.get(f"/Patient/{patient['id']}/$meta-add").status_code == 405
    empty = {"resourceType": "Parameters", "parameter": []}
    assert fhir.post(f"/Patient/{patient['id']}/$meta-add", empty).status_code == 400
    assert fhir.post("/Patient/$meta-add", _meta_params(tag=[TAG])).status_code == 404  # instance only


def test_meta_add_of_unknown_or_deleted_resource_is_404_or_410(fhir, patient):
    assert fhir.post("/Patient/nobody/$meta-add", _meta_params(tag=[TAG])).status_code == 404
    fhir.delete(f"/Patient/{patient['id']}")
    assert fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG])).status_code == 410


def test_meta_add_of_a_malformed_tag_is_refused(fhir, patient):
    response = fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[{"code": 5}]))
    assert response.status_code == 422
    assert fhir.get(f"/Patient/{patient['id']}").json()["meta"]["versionId"] == "1"


def test_type_and_system_meta_are_the_union_in_use(fhir, patient, practitioner):
    fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG], profile=[PROFILE]))
    fhir.post(f"/Practitioner/{practitioner['id']}/$meta-add", _meta_params(security=[LABEL]))
    second = fhir.post("/Patient", new_patient(meta={"tag": [TAG]})).json()
    assert second["meta"]["tag"] == [TAG]
    plain_tag = {"system": TAG["system"], "code": TAG["code"]}  # the index keeps no display

    patients = _returned(fhir.get("/Patient/$meta"))
    assert patients == {"tag": [plain_tag], "profile": [PROFILE]}
    everything = _returned(fhir.get("/$meta"))
    assert everything == {"tag": [plain_tag], "profile": [PROFILE], "security": [LABEL]}
    assert _returned(fhir.post("/$meta", {"resourceType": "Parameters"})) == everything


def test_type_meta_forgets_deleted_resources(fhir, patient):
    fhir.post(f"/Patient/{patient['id']}/$meta-add", _meta_params(tag=[TAG]))
    fhir.delete(f"/Patient/{patient['id']}")
    body = fhir.get("/Patient/$meta").json()
    assert body == {"resourceType": "Parameters"}  # nothing in use: no empty Meta
