"""The FHIR pages of the console: dashboard, lists, search, resource page, edit, delete.

https://hl7.org/fhir/R4/http.html -- writes go through the repository like API writes.
"""
from __future__ import annotations

import json

import pytest

from fhir_api.store import repository
from fhir_api.store.models import Resource

pytestmark = pytest.mark.django_db


def test_dashboard_counts_resources_per_type_and_lists_recent_changes(as_admin, patient_v2):
    repository.create("Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "Pulse"},
                                      "subject": {"reference": "Patient/pat-1"}})
    page = as_admin.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/admin/fhir/Patient/"' in html and 'href="/admin/fhir/Observation/"' in html
    counts = {c.resource_type: c.count for c in page.context["counts"]}
    assert counts == {"Patient": 1, "Observation": 1}
    recent = [(v.resource_type, v.version_id) for v in page.context["recent"]]
    assert recent[:3] == [("Observation", 1), ("Patient", 2), ("Patient", 1)]


def test_admin_without_slash_redirects_to_the_console(client):
    response = client.get("/admin")
    assert response.status_code in (301, 302) and response["Location"].endswith("/admin/")


def test_patient_list_shows_name_birth_date_gender_identifier(as_viewer, patient_v2):
    page = as_viewer.get("/admin/fhir/Patient/")
    assert page.status_code == 200
    assert [c for c in page.context["columns"]] == ["Name", "Birth date", "Gender", "Identifier"]
    row = page.context["rows"][0]
    assert [c["text"] for c in row["cells"]] == ["Chalmers-Smith, Peter", "1974-12-25", "male", "12345"]


def test_observation_list_links_its_subject(as_viewer, patient_v2):
    repository.create("Observation", {
        "resourceType": "Observation", "status": "final", "code": {"text": "Weight"},
        "subject": {"reference": "Patient/pat-1"}, "effectiveDateTime": "2026-01-02",
        "valueQuantity": {"value": 72.5, "unit": "kg"}})
    page = as_viewer.get("/admin/fhir/Observation/")
    cells = page.context["rows"][0]["cells"]
    assert [c["text"] for c in cells] == ["Weight", "Patient/pat-1", "2026-01-02", "72.5 kg"]
    assert cells[1]["url"] == "/admin/fhir/Patient/pat-1/"


def test_generic_list_summarises_from_the_narrative(as_viewer):
    repository.create("Device", {"resourceType": "Device", "text": {
        "status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Infusion <b>pump</b> 7</div>'}})
    page = as_viewer.get("/admin/fhir/Device/")
    assert page.context["columns"] == ["Summary"]
    assert page.context["rows"][0]["cells"][0]["text"] == "Infusion pump 7"


def test_list_pages_without_counting(as_viewer, settings):
    for i in range(55):
        repository.create("Patient", {"resourceType": "Patient", "name": [{"family": f"F{i:02d}"}]})
    first = as_viewer.get("/admin/fhir/Patient/")
    assert len(first.context["rows"]) == 50 and first.context["next_url"]
    second = as_viewer.get("/admin/fhir/Patient/" + first.context["next_url"])
    assert len(second.context["rows"]) == 5 and second.context["next_url"] is None
    ids = {r["id"] for r in first.context["rows"]} | {r["id"] for r in second.context["rows"]}
    assert len(ids) == 55


def test_filters_by_gender_through_the_index_and_by_state(as_viewer, patient_v2):
    repository.create("Patient", {"resourceType": "Patient", "gender": "female", "name": [{"family": "Doe"}]})
    female = as_viewer.get("/admin/fhir/Patient/", {"gender": "female"})
    assert [r["cells"][0]["text"] for r in female.context["rows"]] == ["Doe"]
    repository.delete("Patient", "pat-1")
    deleted = as_viewer.get("/admin/fhir/Patient/", {"state": "deleted"})
    assert [r["id"] for r in deleted.context["rows"]] == ["pat-1"]
    current = as_viewer.get("/admin/fhir/Patient/")
    assert "pat-1" not in [r["id"] for r in current.context["rows"]]


def test_bad_filter_values_are_shown_not_crashed(as_viewer, patient_v2):
    page = as_viewer.get("/admin/fhir/Patient/", {"updated_after": "not a date", "gender": "dragon",
                                                  "after": "zz-top"})
    assert page.status_code == 200
    assert page.context["filter"].errors


def test_search_box_answers_what_the_api_answers(as_viewer, fhir, patient_v2):
    repository.create("Patient", {"resourceType": "Patient", "name": [{"family": "Smith"}], "birthDate": "1950-01-01"})
    repository.create("Patient", {"resourceType": "Patient", "name": [{"family": "Smith"}], "birthDate": "1970-01-01"})
    query = "family=smith&birthdate=lt1960"
    page = as_viewer.get("/admin/fhir/Patient/", {"q": query})
    api = fhir.get("/Patient?" + query).json()
    assert sorted(r["id"] for r in page.context["rows"]) == sorted(e["resource"]["id"] for e in api["entry"])
    assert len(page.context["rows"]) == 1


def test_search_box_shows_a_refused_search_as_an_error(as_viewer):
    page = as_viewer.get("/admin/fhir/Patient/", {"q": "birthdate=notadate"})
    assert page.status_code == 200
    assert page.context["search_error"]
    ignored = as_viewer.get("/admin/fhir/Patient/", {"q": "nonsense=1"})
    assert ignored.status_code == 200 and ignored.context["search_warnings"]


def test_search_box_pages_with_the_engine_cursor(as_viewer):
    for i in range(3):
        repository.create("Patient", {"resourceType": "Patient", "name": [{"family": "Page"}]})
    first = as_viewer.get("/admin/fhir/Patient/", {"q": "family=page&_count=2"})
    assert len(first.context["rows"]) == 2 and first.context["next_url"]
    second = as_viewer.get("/admin/fhir/Patient/" + first.context["next_url"])
    assert len(second.context["rows"]) == 1


def test_unknown_type_is_404(as_viewer):
    assert as_viewer.get("/admin/fhir/Nonsense/").status_code == 404
    assert as_viewer.get("/admin/fhir/Patient/nobody/").status_code == 404


def test_resource_page_shows_json_xml_references_referenced_by_and_index_rows(as_viewer, patient_v2):
    obs = repository.create("Observation", {
        "resourceType": "Observation", "status": "final", "code": {"text": "Pulse"},
        "subject": {"reference": "Patient/pat-1"}}).stored.logical_id
    page = as_viewer.get(f"/admin/fhir/Observation/{obs}/")
    html = page.content.decode()
    assert '<a href="/admin/fhir/Patient/pat-1/">Patient/pat-1</a>' in html
    assert "&lt;Observation xmlns=&quot;http://hl7.org/fhir&quot;&gt;" in html
    patient = as_viewer.get("/admin/fhir/Patient/pat-1/")
    assert {"type": "Observation", "id": obs, "codes": "patient, subject"} in patient.context["referenced_by"]
    index = {(r["kind"], r["code"]) for r in patient.context["index_rows"]}
    assert ("string", "family") in index and ("token", "gender") in index and ("date", "birthdate") in index


def test_narrative_is_sanitised(as_viewer):
    # Stored narratives already pass txt-1; the page rebuilds them from an allow-list anyway.
    row = repository.create("Patient", {"resourceType": "Patient", "text": {"status": "generated", "div": (
        '<div xmlns="http://www.w3.org/1999/xhtml"><p title="t">Hello <a href="http://evil.example/">there</a>'
        '<img src="http://evil.example/pixel.png"/></p></div>')}}).stored
    Resource.objects.filter(logical_id=row.logical_id).update(data=json.dumps({
        "resourceType": "Patient", "id": row.logical_id, "meta": {"versionId": "1"}, "text": {
            "status": "generated", "div": '<div><script>alert(1)</script><p onclick="x()">Hi</p>'
            '<form action="/x"><input></form><iframe src="http://e"></iframe><style>p{}</style></div>'}}))
    html = as_viewer.get(f"/admin/fhir/Patient/{row.logical_id}/").context["narrative"]
    assert html == "<div><p>Hi</p></div>"


def test_sanitiser_keeps_formatting_and_drops_remote_content():
    from admin_ui.resources.rendering import sanitised_narrative

    div = ('<div><p title="t">Hello <a href="http://evil.example/">there</a> <a href="#x">here</a>'
           '<img src="http://evil.example/pixel.png"/></p><table><tr><td colspan="2">x</td></tr></table></div>')
    assert sanitised_narrative({"text": {"div": div}}) == (
        '<div><p title="t">Hello <a>there</a> <a href="#x">here</a></p>'
        '<table><tr><td colspan="2">x</td></tr></table></div>')


def test_editor_edits_json_through_the_repository(as_editor, client, patient_v2):
    page = as_editor.get("/admin/fhir/Patient/pat-1/edit/")
    assert page.status_code == 200
    body = json.loads(page.context["form"].initial["resource"])
    body["gender"] = "female"
    response = as_editor.post("/admin/fhir/Patient/pat-1/edit/", {"resource": json.dumps(body), "version": 2})
    assert response.status_code == 302
    stored = repository.read("Patient", "pat-1")
    assert stored.version_id == 3 and stored.content["gender"] == "female"


@pytest.mark.parametrize("text, expected", [
    ("{not json", "This is not JSON"),
    ('{"resourceType": "Patient", "id": "pat-1", "birthDate": "1974-13-45"}', "Patient.birthDate"),
    ('{"resourceType": "Patient", "id": "other"}', "does not match"),
    ('{"resourceType": "Observation", "id": "pat-1"}', "does not match the URL"),
    ("[1, 2]", "JSON object"),
])
def test_bad_edits_are_shown_next_to_the_field(as_editor, patient_v2, text, expected):
    response = as_editor.post("/admin/fhir/Patient/pat-1/edit/", {"resource": text, "version": 2})
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["resource"])
    assert expected in errors
    assert repository.read("Patient", "pat-1").version_id == 2


def test_stale_edit_is_refused(as_editor, patient_v2):
    body = {"resourceType": "Patient", "id": "pat-1", "gender": "other"}
    response = as_editor.post("/admin/fhir/Patient/pat-1/edit/", {"resource": json.dumps(body), "version": 1})
    assert response.status_code == 200
    assert "Version conflict" in " ".join(response.context["form"].errors["resource"])


def test_editor_creates_and_deletes(as_editor):
    response = as_editor.post("/admin/fhir/Patient/add/", {"resource": '{"resourceType": "Patient", "gender": "other"}'})
    assert response.status_code == 302
    logical_id = response["Location"].rstrip("/").split("/")[-1]
    assert repository.read("Patient", logical_id).content["gender"] == "other"
    bad = as_editor.post("/admin/fhir/Patient/add/", {"resource": '{"resourceType": "Patient", "gender": 5}'})
    assert bad.status_code == 200 and bad.context["form"].errors
    as_editor.post(f"/admin/fhir/Patient/{logical_id}/delete/", {"version": "1"})
    assert Resource.objects.get(logical_id=logical_id).deleted
    page = as_editor.get(f"/admin/fhir/Patient/{logical_id}/")
    assert page.status_code == 200 and page.context["deleted"]


def test_delete_without_version_deletes_nothing(as_editor, patient_v2):
    as_editor.post("/admin/fhir/Patient/pat-1/delete/", {})
    assert not Resource.objects.get(logical_id="pat-1").deleted


def test_picker_finds_patients_practitioners_and_related_persons_by_name(as_admin, patient_v2):
    repository.update("Practitioner", "dr-1", {"resourceType": "Practitioner", "id": "dr-1",
                                               "name": [{"family": "Chalmers", "given": ["Ann"]}]})
    found = as_admin.get("/admin/fhir-user-picker/", {"q": "chalm"}).json()["results"]
    assert {r["reference"] for r in found} == {"Patient/pat-1", "Practitioner/dr-1"}
    exact = as_admin.get("/admin/fhir-user-picker/", {"q": "Patient/pat-1"}).json()["results"]
    assert exact[0]["reference"] == "Patient/pat-1"


def test_a_resource_without_an_xml_form_still_shows(as_viewer):
    row = repository.create("Patient", {"resourceType": "Patient", "name": [{"text": "bell \u0007 here"}]}).stored
    page = as_viewer.get(f"/admin/fhir/Patient/{row.logical_id}/")
    assert page.status_code == 200 and page.context["xml"].startswith("(no XML form")
