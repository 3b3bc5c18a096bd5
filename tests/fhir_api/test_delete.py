"""delete: logical, kept in history (https://hl7.org/fhir/R4/http.html#delete)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_delete_then_read_is_410(fhir, patient):
    assert fhir.delete(f"/Patient/{patient['id']}").status_code == 204
    response = fhir.get(f"/Patient/{patient['id']}")
    assert response.status_code == 410
    assert response.json()["issue"][0]["code"] == "deleted"


def test_delete_keeps_history(fhir, patient):
    fhir.delete(f"/Patient/{patient['id']}")
    assert fhir.get(f"/Patient/{patient['id']}/_history/1").json()["id"] == patient["id"]
    assert fhir.get(f"/Patient/{patient['id']}/_history/2").status_code == 410
    history = fhir.get(f"/Patient/{patient['id']}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]


def test_delete_unknown_resource_is_success(fhir):
    assert fhir.delete("/Patient/nothing-here").status_code == 204


def test_delete_twice_makes_one_deletion_version(fhir, patient):
    fhir.delete(f"/Patient/{patient['id']}")
    fhir.delete(f"/Patient/{patient['id']}")
    assert fhir.get(f"/Patient/{patient['id']}/_history").json()["total"] == 2


def test_delete_with_stale_if_match_is_412(fhir, patient):
    assert fhir.delete(f"/Patient/{patient['id']}", headers={"If-Match": 'W/"7"'}).status_code == 412
    assert fhir.get(f"/Patient/{patient['id']}").status_code == 200
