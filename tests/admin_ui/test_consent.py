"""Consent policies in the console: the list, the form, and a patient's consents.

https://hl7.org/fhir/R4/consent.html -- the form writes an R4 patient-privacy Consent (scope,
category, patient, dateTime, policyRule for ppc-1, provision with one level of exceptions)
through the repository, so it is validated, versioned, compiled for enforcement and audited
like an API write; refusals are shown next to the form and nothing is written. View-only staff
read the pages and change nothing.
"""
from __future__ import annotations

import json
import re

import pytest

from fhir_api.store import jsonio, repository
from fhir_api.store.models import Resource
from smart_auth.models import ConsentNode
from smart_auth.registration import register_device
from tests.access_tokens import bearer, make_client, mint
from tests.admin_ui.conftest import staff

pytestmark = pytest.mark.django_db

ADD = "/admin/consent/add/"
PSY = "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY"
PRIVACY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}


def management(total: int = 1, initial: int = 0) -> dict[str, str]:
    return {"exception-TOTAL_FORMS": str(total), "exception-INITIAL_FORMS": str(initial),
            "exception-MIN_NUM_FORMS": "0", "exception-MAX_NUM_FORMS": "20"}


def consent_form(**fields) -> dict:
    form = {"patient": "Patient/pat-1", "status": "active", "date": "2026-12-01", "decision": "deny", **management()}
    form.update(fields)
    return form


def consents() -> list[dict]:
    return [jsonio.loads(r.data) for r in Resource.objects.filter(resource_type="Consent", deleted=False)]


def app_with_device(name: str):
    client = make_client(name)
    client.device_id = register_device(client)
    client.save(update_fields=["device_id"])
    return client


@pytest.fixture
def doctor(db) -> str:
    return repository.create("Practitioner", {"resourceType": "Practitioner",
                                              "name": [{"family": "Careful", "given": ["Jo"]}]}).stored.logical_id


# -- writing ---------------------------------------------------------------------------------


def test_the_form_writes_an_r4_patient_privacy_consent_through_the_repository(as_editor, patient_v2, doctor):
    response = as_editor.post(ADD, consent_form(
        decision="deny", classes=["Observation", "Condition"], labels=[PSY], purposes=["HRESCH"],
        start="2026-12-01", end="2027-12-01",
        **{"exception-0-decision": "permit", "exception-0-person": f"Practitioner/{doctor}"}))
    assert response.status_code == 302 and response["Location"] == "/admin/consent/patient/pat-1/"
    [consent] = consents()
    assert consent["meta"]["versionId"] == "1"
    assert consent["status"] == "active" and consent["dateTime"] == "2026-12-01"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert consent["category"][0]["coding"][0] == {"system": "http://loinc.org", "code": "59284-0",
                                                   "display": "Patient Consent"}
    assert consent["patient"] == {"reference": "Patient/pat-1"}
    assert consent["policyRule"]["coding"][0]["code"] == "OPTOUT"  # ppc-1: a policyRule
    provision = consent["provision"]
    assert provision["type"] == "deny" and provision["period"] == {"start": "2026-12-01", "end": "2027-12-01"}
    assert [c["code"] for c in provision["class"]] == ["Observation", "Condition"]
    assert provision["securityLabel"] == [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]
    assert provision["purpose"] == [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]
    [exception] = provision["provision"]
    assert exception["type"] == "permit"
    assert exception["actor"][0]["reference"] == {"reference": f"Practitioner/{doctor}"}
    assert exception["actor"][0]["role"]["coding"][0]["code"] == "IRCP"
    # compiled for enforcement in the same write
    assert ConsentNode.objects.filter(consent__logical_id=consent["id"]).count() == 2
    # and audited like an API create, naming the member of staff who wrote it
    events = [jsonio.loads(r.data) for r in Resource.objects.filter(resource_type="AuditEvent")]
    create = [e for e in events if e["subtype"][0]["code"] == "create"
              and e["entity"][-1]["what"]["reference"] == f"Consent/{consent['id']}/_history/1"]
    assert len(create) == 1 and create[0]["entity"][0]["what"] == {"reference": "Patient/pat-1"}
    who = [a["who"].get("identifier") for a in create[0]["agent"]]
    assert {"system": "urn:fhir-server:user", "value": "editor"} in who


def test_a_consent_made_in_the_console_is_enforced_by_the_api(as_editor, fhir, settings, patient_v2):
    settings.FHIR_AUTH_REQUIRED = True
    token = bearer(mint("patient/*.rs", patient="pat-1"))
    assert fhir.get("/Patient/pat-1", headers=token).status_code == 200
    assert as_editor.post(ADD, consent_form(decision="deny")).status_code == 302
    assert fhir.get("/Patient/pat-1", headers=token).status_code == 404
    # made inactive in the console: it decides nothing any more
    [consent] = consents()
    edit = f"/admin/consent/{consent['id']}/edit/"
    assert as_editor.post(edit, consent_form(status="inactive", version="1")).status_code == 302
    assert fhir.get("/Patient/pat-1", headers=token).status_code == 200


def test_a_deny_for_one_app_hides_the_patient_from_that_app_only(as_editor, fhir, settings, patient_v2):
    settings.FHIR_AUTH_REQUIRED = True
    nosy, trusted = app_with_device("Nosy app"), app_with_device("Trusted app")
    assert as_editor.post(ADD, consent_form(decision="permit", **{
        "exception-0-decision": "deny", "exception-0-app": nosy.client_id})).status_code == 302
    [consent] = consents()
    assert consent["provision"]["provision"][0]["actor"][0]["reference"]["reference"] == f"Device/{nosy.device_id}"
    for app, status in ((nosy, 404), (trusted, 200)):
        token = bearer(mint("patient/*.rs", patient="pat-1", client=app))
        assert fhir.get("/Patient/pat-1", headers=token).status_code == status


def test_editing_with_the_form_keeps_what_the_form_does_not_show(as_editor, patient_v2, doctor):
    body = {"resourceType": "Consent", "status": "active",
            "identifier": [{"system": "urn:example:consents", "value": "c-1"}],
            "scope": PRIVACY,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
            "patient": {"reference": "Patient/pat-1"}, "dateTime": "2026-11-02",
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit",
                          "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "XYZ"}],
                          "provision": [{"type": "deny", "actor": [
                              {"role": {"text": "x"}, "reference": {"reference": f"Practitioner/{doctor}"}}]}]}}
    cid = repository.create("Consent", body).stored.logical_id
    page = as_editor.get(f"/admin/consent/{cid}/edit/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'value="XYZ" selected' in html  # an uncommon purpose is offered, and chosen
    assert f'value="Practitioner/{doctor}"' in html and 'value="2026-11-02"' in html
    form = consent_form(decision="deny", purposes=["XYZ"], version="1", date="2026-11-02",
                        **management(total=2, initial=1),
                        **{"exception-0-decision": "permit", "exception-0-person": f"Practitioner/{doctor}"})
    assert as_editor.post(f"/admin/consent/{cid}/edit/", form).status_code == 302
    stored = repository.read("Consent", cid)
    assert stored.version_id == 2
    content = stored.content
    assert content["identifier"] == body["identifier"] and content["category"] == body["category"]
    assert content["provision"]["type"] == "deny" and content["provision"]["purpose"][0]["code"] == "XYZ"
    assert content["provision"]["provision"][0]["type"] == "permit"


def test_an_exception_stays_until_it_is_removed(as_editor, patient_v2, doctor):
    as_editor.post(ADD, consent_form(**{"exception-0-decision": "permit",
                                        "exception-0-person": f"Practitioner/{doctor}"}))
    [consent] = consents()
    kept = {"exception-0-decision": "permit", "exception-0-person": f"Practitioner/{doctor}"}
    edit = f"/admin/consent/{consent['id']}/edit/"
    # saved again unchanged: the exception stays
    assert as_editor.post(edit, consent_form(version="1", **management(total=2, initial=1), **kept)).status_code == 302
    assert repository.read("Consent", consent["id"]).content["provision"]["provision"] == \
        consent["provision"]["provision"]
    form = consent_form(version="2", **management(total=2, initial=1), **kept, **{"exception-0-DELETE": "on"})
    assert as_editor.post(edit, form).status_code == 302
    assert "provision" not in repository.read("Consent", consent["id"]).content["provision"]


def test_a_consent_the_form_cannot_show_is_sent_to_the_json_editor(as_editor, patient_v2):
    cid = repository.create("Consent", {
        "resourceType": "Consent", "status": "active",
        "scope": PRIVACY,
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/pat-1"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "deny", "data": [{"meaning": "instance", "reference": {"reference": "Patient/pat-1"}}]},
    }).stored.logical_id
    html = as_editor.get(f"/admin/consent/{cid}/edit/").content.decode()
    assert "Consent.provision has data, which the form does not cover" in html
    assert f"/admin/fhir/Consent/{cid}/edit/" in html and 'id="consent-form"' not in html
    # and posting the form anyway changes nothing
    as_editor.post(f"/admin/consent/{cid}/edit/", consent_form(version="1"))
    assert repository.read("Consent", cid).version_id == 1


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, says", [
    ({"start": "2027-01-01", "end": "2026-01-01"}, "The period ends before it starts."),
    ({"end": "2026-02-31"}, "Enter a valid date."),
    ({"patient": "Patient/nobody"}, "Patient/nobody does not exist on this server."),
    ({"patient": "Practitioner/x"}, "Give a reference to a Patient"),
    ({"patient": ""}, "This field is required."),
    ({"decision": ""}, "This field is required."),
    ({"decision": "maybe"}, "Select a valid choice."),
    ({"status": "draft"}, "Select a valid choice."),
    ({"person": "Practitioner/ghost"}, "Practitioner/ghost does not exist on this server."),
    ({"person": "Device/x"}, "Give a reference to a Patient or Practitioner or RelatedPerson"),
    ({"organization": "Organization/none"}, "Organization/none does not exist on this server."),
    ({"classes": ["Nonsense"]}, "Select a valid choice."),
    ({"exception-0-person": "Patient/pat-1"}, "This field is required."),  # an exception without a decision
    ({"exception-0-decision": "permit", "exception-0-start": "2027-01-01", "exception-0-end": "2026-01-01"},
     "The period ends before it starts."),
])
def test_bad_input_is_shown_and_nothing_is_written(as_editor, patient_v2, fields, says):
    response = as_editor.post(ADD, consent_form(**fields))
    assert response.status_code == 200
    html = response.content.decode()
    assert "The Consent was not saved" in html and says in html
    assert consents() == []


def test_a_refusal_of_the_repository_is_shown_above_the_form(as_editor, patient_v2):
    app = app_with_device("Gone app")
    repository.delete("Device", app.device_id)  # the Consent's actor can no longer be resolved
    response = as_editor.post(ADD, consent_form(**{"app": app.client_id}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="refused"' in html and f"Device/{app.device_id} does not exist" in html
    assert consents() == []


def test_a_stale_edit_is_refused(as_editor, patient_v2):
    as_editor.post(ADD, consent_form())
    [consent] = consents()
    edit = f"/admin/consent/{consent['id']}/edit/"
    assert as_editor.post(edit, consent_form(decision="permit", version="1")).status_code == 302
    response = as_editor.post(edit, consent_form(decision="deny", version="1"))
    assert response.status_code == 200 and 'id="refused"' in response.content.decode()
    assert repository.read("Consent", consent["id"]).content["provision"]["type"] == "permit"


def test_editing_an_unknown_consent_is_404(as_editor):
    assert as_editor.get("/admin/consent/nope/edit/").status_code == 404
    assert as_editor.get("/admin/consent/patient/nope/").status_code == 404


# -- permissions -------------------------------------------------------------------------------


def test_view_only_staff_read_the_consent_pages_and_change_nothing(as_viewer, patient_v2):
    repository.create("Consent", _deny_consent("pat-1"))
    cid = consents()[0]["id"]
    for path in ("/admin/consent/", "/admin/consent/patient/pat-1/", "/admin/consent/?status=active&decision=deny"):
        page = as_viewer.get(path)
        assert page.status_code == 200
        assert "New consent policy" not in page.content.decode() and "/edit/" not in page.content.decode()
    assert as_viewer.get(ADD).status_code == 403
    assert as_viewer.post(ADD, consent_form()).status_code == 403
    assert as_viewer.get(f"/admin/consent/{cid}/edit/").status_code == 403
    edited = as_viewer.post(f"/admin/consent/{cid}/edit/", consent_form(decision="permit", version="1"))
    assert edited.status_code == 403
    assert len(consents()) == 1 and repository.read("Consent", cid).version_id == 1


def test_app_managers_see_consents_but_do_not_write_them(client, patient_v2):
    client.force_login(staff("it", "App managers"))
    assert client.get("/admin/consent/").status_code == 200
    assert client.post(ADD, consent_form()).status_code == 403
    assert consents() == []


def test_staff_without_a_group_see_no_consent_section(client, patient_v2):
    client.force_login(staff("nobody"))
    assert client.get("/admin/consent/").status_code == 403
    assert "Consent policies" not in client.get("/admin/").content.decode()


def test_non_staff_are_sent_to_sign_in(client, outsider):
    client.force_login(outsider)
    response = client.get("/admin/consent/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_sidebar_lists_consent_and_audit_for_viewers(as_viewer):
    html = as_viewer.get("/admin/").content.decode()
    assert 'href="/admin/consent/"' in html and 'href="/admin/audit/"' in html


# -- reading -------------------------------------------------------------------------------------


def _deny_consent(patient: str, **provision) -> dict:
    return {
        "resourceType": "Consent", "status": "active",
        "scope": PRIVACY,
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"}, "dateTime": "2026-12-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
        "provision": {"type": "deny", **provision},
    }


def test_the_patient_page_shows_what_each_active_consent_allows(as_viewer, patient_v2, doctor, settings):
    repository.create("Consent", _deny_consent(
        "pat-1", period={"start": "2026-12-01"},
        securityLabel=[{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}],
        provision=[{"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                   "code": "TREAT"}],
                    "actor": [{"role": {"text": "GP"}, "reference": {"reference": f"Practitioner/{doctor}"}}],
                    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}]))
    inactive = _deny_consent("pat-1")
    inactive["status"] = "inactive"
    old = repository.create("Consent", inactive).stored.logical_id
    other = repository.create("Patient", {"resourceType": "Patient"}).stored.logical_id
    repository.create("Consent", _deny_consent(other))
    html = as_viewer.get("/admin/consent/patient/pat-1/").content.decode()
    assert "Chalmers-Smith" in html and "FHIR_CONSENT_DEFAULT=permit" in html
    assert len(re.findall(r'class="module consent-card"', html)) == 1  # the other patient's is not here
    assert "enforced" in html and "PSY (psychiatry information)" in html and "from 2026-12-01" in html
    assert "Except:" in html and f"Careful, Jo (Practitioner/{doctor})" in html
    assert "TREAT (treatment)" in html and "Observation" in html
    assert "Not in force" in html and old in html
    settings.FHIR_CONSENT_DEFAULT = "deny"
    assert "FHIR_CONSENT_DEFAULT=deny" in as_viewer.get("/admin/consent/patient/pat-1/").content.decode()


def test_the_patient_page_reads_r4s_untyped_root_provision_by_its_policy_rule(as_viewer, patient_v2):
    body = _deny_consent("pat-1")
    body["policyRule"]["coding"][0]["code"] = "OPTOUT"
    body["provision"] = {"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Immunization"}]}
    repository.create("Consent", body)
    html = as_viewer.get("/admin/consent/patient/pat-1/").content.decode()
    assert "Base policy" in html and "policyRule OPTOUT" in html
    assert "Immunization" in html and "the opposite of the provision above" in html


def test_a_patients_page_links_to_their_consents(as_viewer, patient_v2):
    html = as_viewer.get("/admin/fhir/Patient/pat-1/").content.decode()
    assert 'href="/admin/consent/patient/pat-1/"' in html


def test_the_list_filters_by_patient_status_decision_actor_and_app(as_viewer, patient_v2, doctor):
    app = app_with_device("Filtered app")
    other = repository.create("Patient", {"resourceType": "Patient"}).stored.logical_id
    nested = repository.create("Consent", _deny_consent("pat-1", provision=[
        {"type": "permit", "actor": [{"role": {"text": "x"}, "reference": {"reference": f"Practitioner/{doctor}"}}]}])
    ).stored.logical_id
    permit = _deny_consent(other, actor=[{"role": {"text": "x"},
                                          "reference": {"reference": f"Device/{app.device_id}"}}])
    permit["provision"]["type"] = "permit"
    permitted = repository.create("Consent", permit).stored.logical_id
    inactive = _deny_consent(other)
    inactive["status"] = "inactive"
    resting = repository.create("Consent", inactive).stored.logical_id

    def listed(query: str) -> set[str]:
        html = as_viewer.get(f"/admin/consent/?{query}").content.decode()
        return {i for i in (nested, permitted, resting) if f"/admin/fhir/Consent/{i}/" in html}

    assert listed("") == {nested, permitted, resting}
    assert listed("patient=pat-1") == {nested}
    assert listed(f"patient=Patient/{other}") == {permitted, resting}
    assert listed("status=inactive") == {resting}
    assert listed("decision=permit") == {permitted}
    assert listed(f"actor=Practitioner/{doctor}") == {nested}  # named in an exception
    assert listed(f"app={app.client_id}") == {permitted}
    assert listed("status=nonsense") == set()


def test_the_consent_resource_page_offers_the_form(as_editor, patient_v2):
    cid = repository.create("Consent", _deny_consent("pat-1")).stored.logical_id
    html = as_editor.get(f"/admin/fhir/Consent/{cid}/").content.decode()
    assert f'href="/admin/consent/{cid}/edit/"' in html and f'href="/admin/fhir/Consent/{cid}/edit/"' in html


def test_the_raw_json_editor_writes_consents_too_and_refuses_unenforceable_ones(as_editor, patient_v2):
    cid = repository.create("Consent", _deny_consent("pat-1")).stored.logical_id
    body = _deny_consent("pat-1")
    body["id"] = cid
    body["provision"] = {"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}
    body["policyRule"]["coding"][0]["code"] = "xyz"  # no base and no type: cannot be enforced (422)
    response = as_editor.post(f"/admin/fhir/Consent/{cid}/edit/", {"resource": json.dumps(body), "version": "1"})
    html = response.content.decode()
    assert response.status_code == 200 and "errorlist" in html, re.findall(r'<ul class="errorlist.*?</ul>', html, re.S)
    assert "provision.type is required" in html, re.findall(r'<ul class="errorlist.*?</ul>', html, re.S)
    assert repository.read("Consent", cid).version_id == 1


def test_the_picker_finds_organizations_when_asked(as_viewer):
    repository.create("Organization", {"resourceType": "Organization", "name": "Good Health Clinic"})
    found = as_viewer.get("/admin/fhir-user-picker/?q=good&types=Organization").json()["results"]
    assert [r["label"] for r in found] == ["Good Health Clinic (Organization)"]
    assert as_viewer.get("/admin/fhir-user-picker/?q=good").json()["results"] == []  # people by default
