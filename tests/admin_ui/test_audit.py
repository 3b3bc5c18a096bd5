"""The audit trail in the console: AuditEvents written by API calls, found with the API's own
AuditEvent search (who, which app, which patient, what, when, outcome; newest first, paged),
each readable; read-only for everyone, and looking at it records nothing.

https://hl7.org/fhir/R4/auditevent.html#search, https://profiles.ihe.net/ITI/BALP/
"""
from __future__ import annotations

import json
import re

import pytest

from fhir_api.store import jsonio, repository
from fhir_api.store.models import Resource
from smart_auth.audit import balp
from tests.access_tokens import bearer, make_client, make_user, mint

pytestmark = pytest.mark.django_db

LIST = "/admin/audit/"


def audit_count() -> int:
    return Resource.objects.filter(resource_type="AuditEvent").count()


def event_ids(html: str) -> list[str]:
    return re.findall(r'href="/admin/audit/([^/"]+)/"', html)


def events_of(html: str) -> list[dict]:
    return [jsonio.loads(Resource.objects.get(resource_type="AuditEvent", logical_id=i).data) for i in event_ids(html)]


def about_pat_1(event: dict) -> bool:
    return any(x.get("what", {}).get("reference") == "Patient/pat-1" for x in event.get("entity", []))


@pytest.fixture
def traffic(fhir, settings, patient_v2):
    """API calls with tokens: a practitioner's app reads and searches pat-1, another app is refused,
    and a patient's app reads their own record."""
    settings.FHIR_AUTH_REQUIRED = True
    doctor = repository.create("Practitioner", {"resourceType": "Practitioner"}).stored.logical_id
    chart, portal = make_client("Chart app"), make_client("Portal app")
    doc = bearer(mint("user/*.rs", user=make_user("doc"), fhir_user=f"Practitioner/{doctor}", client=chart))
    assert fhir.get("/Patient/pat-1", headers=doc).status_code == 200
    assert fhir.get("/Observation", headers=doc, patient="pat-1").status_code == 200
    assert fhir.get("/Patient/pat-1", headers=bearer(mint("patient/Observation.rs", patient="pat-1",
                                                          client=portal))).status_code == 403
    return {"doctor": doctor, "chart": chart, "portal": portal}


def test_the_audit_page_shows_events_written_by_api_calls(as_viewer, traffic):
    html = as_viewer.get(LIST).content.decode()
    events = events_of(html)
    assert events and all(e["resourceType"] == "AuditEvent" for e in events)
    recorded = [e["recorded"] for e in events]
    assert recorded == sorted(recorded, reverse=True)  # _sort=-date
    read = next(e for e in events if e["subtype"][0]["code"] == "read" and e["outcome"] == "0")
    assert f"Practitioner/{traffic['doctor']}" in html and traffic["chart"].client_id in html
    assert "GET /fhir/AuditEvent?_sort=-date" in html
    page = as_viewer.get(f"/admin/audit/{read['id']}/").content.decode()
    assert "read" in page and "success" in page and 'href="/admin/fhir/Patient/pat-1/"' in page
    assert f"app {traffic['chart'].client_id}" in page and "&quot;resourceType&quot;" in page


@pytest.mark.parametrize("query, check", [
    ("patient=pat-1", lambda e: about_pat_1(e)),
    ("patient=Patient/pat-1", lambda e: about_pat_1(e)),
    ("subtype=search-type", lambda e: e["subtype"][0]["code"] == "search-type"),
    ("action=R", lambda e: e["action"] == "R"),
    ("outcome=4%2C8", lambda e: e["outcome"] in ("4", "8")),
    ("outcome=0", lambda e: e["outcome"] == "0"),
    ("kind=rest", lambda e: e["type"]["code"] == "rest"),
    ("kind=authentication", lambda e: e["type"]["code"] == "110114"),
])
def test_filters_find_what_the_api_search_finds(as_viewer, traffic, query, check):
    events = events_of(as_viewer.get(f"{LIST}?{query}").content.decode())
    assert events and all(check(e) for e in events)


def test_filters_by_person_and_app(as_viewer, traffic):
    mine = events_of(as_viewer.get(f"{LIST}?who=Practitioner/{traffic['doctor']}").content.decode())
    assert {e["subtype"][0]["code"] for e in mine} == {"read", "search-type"}
    by_app = events_of(as_viewer.get(f"{LIST}?app={traffic['portal'].client_id}").content.decode())
    assert by_app and all(e["outcome"] == "4" for e in by_app)


def test_filters_by_account_name_and_resource(as_editor, patient_v2):
    org = repository.create("Organization", {"resourceType": "Organization", "name": "x"}).stored.logical_id
    as_editor.post("/admin/fhir/Patient/pat-1/edit/", {
        "resource": json.dumps({"resourceType": "Patient", "id": "pat-1", "gender": "female"}), "version": "2"})
    assert repository.current_version("Patient", "pat-1") == 3
    by_editor = events_of(as_editor.get(f"{LIST}?who=editor").content.decode())
    assert [e["entity"][-1]["what"]["reference"] for e in by_editor] == ["Patient/pat-1/_history/3"]
    about = events_of(as_editor.get(f"{LIST}?entity=Organization/{org}").content.decode())
    assert [e["entity"][-1]["what"]["reference"] for e in about] == [f"Organization/{org}/_history/1"]


def test_filters_by_date_range(as_viewer, traffic):
    assert event_ids(as_viewer.get(f"{LIST}?since=2000-01-01&until=2000-01-02").content.decode()) == []
    assert event_ids(as_viewer.get(f"{LIST}?since=2000-01-01").content.decode())


@pytest.mark.parametrize("query, says", [
    ("since=2026-12-02&until=2026-12-01", "The range ends before it starts."),
    ("since=not-a-day", "Enter a valid date."),
    ("entity=justanid", "Give a reference: Type/ID."),
    ("patient=Observation/1", "Give Patient/ID or the id."),
    ("subtype=nonsense", "Select a valid choice."),
])
def test_bad_filters_are_shown_not_crashed(as_viewer, traffic, query, says):
    response = as_viewer.get(f"{LIST}?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Check the filters." in html and says in html and event_ids(html) == []


def test_the_list_pages_with_the_engine_cursor(as_viewer):
    actor = balp.Actor(username="loader")
    repository.append_audit([balp.rest_event(actor, "read", reference=f"Patient/p{i}", patient=f"p{i}")
                             for i in range(60)])
    first = as_viewer.get(LIST).content.decode()
    assert len(event_ids(first)) == 50
    following = re.search(r'class="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = as_viewer.get(LIST + following).content.decode()
    assert len(event_ids(second)) >= 10 and not set(event_ids(first)) & set(event_ids(second))


def test_looking_at_the_audit_trail_records_nothing(as_viewer, traffic):
    before = audit_count()
    html = as_viewer.get(LIST).content.decode()
    as_viewer.get(f"{LIST}?patient=pat-1&outcome=0")
    as_viewer.get(f"/admin/audit/{event_ids(html)[0]}/")
    as_viewer.get(f"/admin/fhir/AuditEvent/{event_ids(html)[0]}/")
    assert audit_count() == before


def test_the_audit_pages_refuse_posts(as_admin, traffic):
    event = event_ids(as_admin.get(LIST).content.decode())[0]
    before = audit_count()
    assert as_admin.post(LIST, {}).status_code == 405
    assert as_admin.post(f"/admin/audit/{event}/", {}).status_code == 405
    assert audit_count() == before


def test_the_generic_pages_offer_no_change_to_an_audit_event(as_admin, traffic):
    event = event_ids(as_admin.get(LIST).content.decode())[0]
    base = f"/admin/fhir/AuditEvent/{event}"
    resource = as_admin.get(f"{base}/").content.decode()
    assert "Edit JSON" not in resource and "Delete" not in resource and f'href="/admin/audit/{event}/"' in resource
    history = as_admin.get(f"{base}/history/").content.decode()
    assert "Restore this version" not in history
    assert "New AuditEvent" not in as_admin.get("/admin/fhir/AuditEvent/").content.decode()
    stored = Resource.objects.get(resource_type="AuditEvent", logical_id=event).data
    for path, data in [(f"{base}/edit/", {"resource": stored, "version": "1"}), (f"{base}/delete/", {"version": "1"}),
                       (f"{base}/history/1/restore/", {"current": "1"}),
                       ("/admin/fhir/AuditEvent/add/", {"resource": '{"resourceType": "AuditEvent"}'})]:
        assert as_admin.get(path).status_code in (403, 405)
        assert as_admin.post(path, data).status_code == 403
    assert Resource.objects.get(resource_type="AuditEvent", logical_id=event).data == stored


def test_view_only_staff_read_the_audit_trail(as_viewer, traffic):
    html = as_viewer.get(LIST).content.decode()
    assert as_viewer.get(f"/admin/audit/{event_ids(html)[0]}/").status_code == 200


def test_staff_without_rights_and_non_staff_do_not(client, traffic, outsider):
    from tests.admin_ui.conftest import staff

    client.force_login(staff("nobody"))
    assert client.get(LIST).status_code == 403
    client.force_login(outsider)
    assert client.get(LIST).status_code == 302


def test_an_unknown_event_is_404(as_viewer):
    assert as_viewer.get("/admin/audit/nope/").status_code == 404
