"""patch over HTTP: JSON Patch and FHIRPath Patch (https://hl7.org/fhir/R4/http.html#patch)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_json_patch_makes_new_version(fhir, patient):
    ops = [{"op": "replace", "path": "/gender", "value": "female"},
           {"op": "add", "path": "/name/0/given/-", "value": "Jim"}]
    response = fhir.patch(f"/Patient/{patient['id']}", ops, content_type="application/json-patch+json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["gender"] == "female" and body["name"][0]["given"][-1] == "Jim"
    assert body["meta"]["versionId"] == "2"


def test_fhirpath_patch_replace(fhir, patient):
    params = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "1930-01-01"},
    ]}]}
    response = fhir.patch(f"/Patient/{patient['id']}", params)
    assert response.status_code == 200, response.content
    assert response.json()["birthDate"] == "1930-01-01"


def test_patch_producing_invalid_resource_is_rejected(fhir, patient):
    ops = [{"op": "replace", "path": "/gender", "value": {"not": "a code"}}]
    response = fhir.patch(f"/Patient/{patient['id']}", ops, content_type="application/json-patch+json")
    assert response.status_code in (400, 422)
    assert fhir.get(f"/Patient/{patient['id']}").json()["meta"]["versionId"] == "1"


def test_patch_with_stale_if_match_is_412(fhir, patient):
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    response = fhir.patch(f"/Patient/{patient['id']}", ops, content_type="application/json-patch+json",
                          headers={"If-Match": 'W/"5"'})
    assert response.status_code == 412


def test_patch_of_unknown_resource_is_404(fhir):
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    assert fhir.patch("/Patient/nobody", ops, content_type="application/json-patch+json").status_code == 404


def test_patch_may_not_change_id(fhir, patient):
    ops = [{"op": "replace", "path": "/id", "value": "other"}]
    response = fhir.patch(f"/Patient/{patient['id']}", ops, content_type="application/json-patch+json")
    assert response.status_code == 400


def test_patch_with_plain_resource_body_is_400(fhir, patient):
    assert fhir.patch(f"/Patient/{patient['id']}", patient).status_code == 400


@pytest.mark.parametrize("op", [{}, [], 3, None])
def test_json_patch_op_that_is_not_a_string_is_a_400(fhir, patient, op):
    # Found by schemathesis: {"op": {}} once failed with a 500 (unhashable dict).
    response = fhir.send("PATCH", f"/Patient/{patient['id']}", [{"op": op, "path": "/gender", "value": "male"}],
                         content_type="application/json-patch+json")
    assert response.status_code == 400
