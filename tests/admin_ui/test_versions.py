"""Versions in the console: history, one version, a diff between any two, restore, deleted resources.

https://hl7.org/fhir/R4/http.html#history -- a restore is a new version written through the
repository; older versions never change.
"""
from __future__ import annotations

import pytest

from fhir_api.store import repository
from fhir_api.store.models import ResourceVersion

pytestmark = pytest.mark.django_db


def test_history_lists_every_version_newest_first(as_viewer, patient_v2):
    page = as_viewer.get("/admin/fhir/Patient/pat-1/history/")
    assert page.status_code == 200
    assert [v.version_id for v in page.context["versions"]] == [2, 1]


def test_a_version_is_viewable(as_viewer, patient_v2):
    page = as_viewer.get("/admin/fhir/Patient/pat-1/history/1/")
    assert page.status_code == 200
    assert "&quot;Chalmers&quot;" in page.content.decode()
    assert as_viewer.get("/admin/fhir/Patient/pat-1/history/9/").status_code == 404


def test_diff_names_added_removed_and_changed_elements(as_viewer, patient_v2):
    page = as_viewer.get("/admin/fhir/Patient/pat-1/history/diff/", {"from": 1, "to": 2})
    changes = {(c.path, c.kind): (c.old, c.new) for c in page.context["changes"]}
    assert changes[("name[0].family", "changed")] == ('"Chalmers"', '"Chalmers-Smith"')
    assert changes[("birthDate", "added")] == ("", '"1974-12-25"')
    assert ("meta.versionId", "changed") in changes
    backwards = as_viewer.get("/admin/fhir/Patient/pat-1/history/diff/", {"from": 2, "to": 1})
    assert ("birthDate", "removed") in {(c.path, c.kind) for c in backwards.context["changes"]}


def test_diff_with_bad_versions_is_not_a_500(as_viewer, patient_v2):
    assert as_viewer.get("/admin/fhir/Patient/pat-1/history/diff/", {"from": "x", "to": 2}).status_code == 302
    assert as_viewer.get("/admin/fhir/Patient/pat-1/history/diff/", {"from": 1, "to": 99}).status_code == 404


def test_restore_writes_the_old_content_as_a_new_version(as_editor, patient_v2):
    response = as_editor.post("/admin/fhir/Patient/pat-1/history/1/restore/", {"current": "2"})
    assert response.status_code == 302
    stored = repository.read("Patient", "pat-1")
    assert stored.version_id == 3
    assert stored.content["name"] == [{"family": "Chalmers", "given": ["Peter"]}]
    assert "birthDate" not in stored.content
    assert ResourceVersion.objects.filter(logical_id="pat-1").count() == 3


def test_restore_against_a_stale_page_is_refused(as_editor, patient_v2):
    as_editor.post("/admin/fhir/Patient/pat-1/history/1/restore/", {"current": "1"})
    assert repository.read("Patient", "pat-1").version_id == 2


def test_deleted_resource_is_findable_and_restorable(as_editor, patient_v2):
    repository.delete("Patient", "pat-1")
    listed = as_editor.get("/admin/fhir/Patient/", {"state": "deleted"})
    assert [r["id"] for r in listed.context["rows"]] == ["pat-1"]
    page = as_editor.get("/admin/fhir/Patient/pat-1/")
    assert page.context["deleted"] and page.context["last_version"].version_id == 2
    deletion = as_editor.get("/admin/fhir/Patient/pat-1/history/3/")
    assert deletion.status_code == 200
    refused = as_editor.post("/admin/fhir/Patient/pat-1/history/3/restore/", {"current": "3"})
    assert refused.status_code == 302 and repository.current_version("Patient", "pat-1") == 3
    as_editor.post("/admin/fhir/Patient/pat-1/history/2/restore/", {"current": "3"})
    stored = repository.read("Patient", "pat-1")
    assert stored.version_id == 4 and stored.content["birthDate"] == "1974-12-25"


def test_restore_needs_post(as_editor, patient_v2):
    assert as_editor.get("/admin/fhir/Patient/pat-1/history/1/restore/").status_code == 405
