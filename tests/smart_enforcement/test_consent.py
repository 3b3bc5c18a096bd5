"""Patient-privacy Consents decide who sees a patient's data, in the same SQL as the scopes.

https://hl7.org/fhir/R4/consent.html -- a provision (permit/deny, nested exceptions) matches
on actor (the person, the client app as its Device), class, code, securityLabel, purpose,
period and dataPeriod; the deepest applying provision decides, a deny beats a permit beside
it; FHIR_CONSENT_DEFAULT says what holds where no Consent decides; ETREAT (break the glass)
sets deny provisions aside for clients registered for it. A denied resource is absent from
every door (read 404, search, counts, includes, chains, _has, history, $everything) and a
denied write is 403.
"""
from __future__ import annotations

from typing import Any

import pytest

from fhir_api.store import repository
from smart_auth.models import ConsentNode
from tests.access_tokens import bearer, make_client, make_user, mint
from tests.smart_enforcement.conftest import LAB, observation, store

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CLIENT_ID_SYSTEM = "urn:ietf:params:oauth:client-id"


def consent(patient: str, provision: dict[str, Any], **extra: Any) -> str:
    return store(consent_body(patient, provision, **extra))


def consent_body(patient: str, provision: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision, **extra,
    }


def actor(reference: str) -> list[dict[str, Any]]:
    return [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                  "code": "IRCP"}]}, "reference": {"reference": reference}}]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(e["resource"]["id"] for e in response.json().get("entry", [])
                  if e.get("search", {}).get("mode") != "outcome" and "resource" in e)


@pytest.fixture
def doc_token(world):
    """The practitioner who saw Alice, signed in through an app with broad user/ scopes."""
    return bearer(mint("user/*.cruds", user=make_user("doc"), fhir_user=f"Practitioner/{world['doc']}"))


@pytest.fixture
def alice_data(world) -> list[str]:
    return sorted([world["alice"], world["alice_enc"], world["alice_lab"], world["alice_vital"]])


def visible(fhir, world, token) -> list[str]:
    """Of Alice's and Bob's data, what the token can read by id."""
    found = []
    for rtype, key in (("Patient", "alice"), ("Encounter", "alice_enc"), ("Observation", "alice_lab"),
                       ("Observation", "alice_vital"), ("Patient", "bob"), ("Observation", "bob_lab")):
        response = fhir.get(f"/{rtype}/{world[key]}", headers=token)
        assert response.status_code in (200, 404), response.content
        if response.status_code == 200:
            found.append(world[key])
    return sorted(found)


# -- provision kinds ------------------------------------------------------------------------


def test_no_consent_changes_nothing(fhir, world, doc_token, alice_data):
    assert visible(fhir, world, doc_token) == sorted([*alice_data, world["bob"], world["bob_lab"]])


def test_a_deny_naming_the_person_hides_the_patients_data_from_them_only(fhir, world, doc_token, alice_data):
    consent(world["alice"], {"type": "permit", "provision": [{"type": "deny", "actor": actor(f"Practitioner/{world['doc']}")}]})
    assert visible(fhir, world, doc_token) == sorted([world["bob"], world["bob_lab"]])
    other = store({"resourceType": "Practitioner", "name": [{"family": "Other"}]})
    colleague = bearer(mint("user/*.rs", user=make_user("other"), fhir_user=f"Practitioner/{other}"))
    assert visible(fhir, world, colleague) == sorted([*alice_data, world["bob"], world["bob_lab"]])


def test_a_deny_naming_the_app_as_its_device_hides_the_data_from_that_app(fhir, world, alice_data):
    app = make_client("research app", client_id="research-app")
    device = store({"resourceType": "Device", "identifier": [{"system": CLIENT_ID_SYSTEM, "value": "research-app"}]})
    consent(world["alice"], {"type": "permit", "provision": [{"type": "deny", "actor": actor(f"Device/{device}")}]})
    assert visible(fhir, world, bearer(mint("system/*.rs", client=app))) == sorted([world["bob"], world["bob_lab"]])
    assert visible(fhir, world, bearer(mint("system/*.rs"))) == sorted([*alice_data, world["bob"], world["bob_lab"]])


def test_the_device_registration_makes_for_an_app_names_it_in_a_consent(fhir, world, alice_data):
    from smart_auth import registration

    app = registration.register(name="Analytics", redirect_uris=["https://app.example/cb"]).client
    consent(world["alice"], {"type": "permit", "provision": [{"type": "deny", "actor": actor(f"Device/{app.device_id}")}]})
    person = make_user("doc")
    through_app = bearer(mint("user/*.rs", user=person, fhir_user=f"Practitioner/{world['doc']}", client=app))
    elsewhere = bearer(mint("user/*.rs", user=person, fhir_user=f"Practitioner/{world['doc']}"))
    assert visible(fhir, world, through_app) == sorted([world["bob"], world["bob_lab"]])
    assert visible(fhir, world, elsewhere) == sorted([*alice_data, world["bob"], world["bob_lab"]])


def test_a_deny_naming_an_organization_holds_for_its_practitioners_and_its_apps(fhir, world, alice_data):
    org = store({"resourceType": "Organization", "name": "Insurer"})
    store({"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/{world['doc']}"},
           "organization": {"reference": f"Organization/{org}"}})
    app = make_client("insurer app", client_id="insurer-app")
    store({"resourceType": "Device", "identifier": [{"system": CLIENT_ID_SYSTEM, "value": "insurer-app"}],
           "owner": {"reference": f"Organization/{org}"}})
    consent(world["alice"], {"type": "permit", "provision": [{"type": "deny", "actor": actor(f"Organization/{org}")}]})
    only_bob = sorted([world["bob"], world["bob_lab"]])
    member = bearer(mint("user/*.rs", user=make_user("doc"), fhir_user=f"Practitioner/{world['doc']}"))
    assert visible(fhir, world, member) == only_bob
    assert visible(fhir, world, bearer(mint("system/*.rs", client=app))) == only_bob
    other = store({"resourceType": "Practitioner", "name": [{"family": "Other"}]})
    outsider = bearer(mint("user/*.rs", user=make_user("other"), fhir_user=f"Practitioner/{other}"))
    assert visible(fhir, world, outsider) == sorted([*alice_data, *only_bob])


def test_a_deny_of_a_class_hides_only_those_types(fhir, world, doc_token):
    consent(world["alice"], {"type": "permit", "provision": [{
        "type": "deny", "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}]})
    assert visible(fhir, world, doc_token) == sorted([world["alice"], world["alice_enc"], world["bob"], world["bob_lab"]])


def test_a_deny_of_a_code_hides_the_resources_with_that_code(fhir, world, doc_token):
    coded = store(observation(world["alice"], code={"coding": [{"system": "http://loinc.org", "code": "5221-7"}]}))
    other = store(observation(world["alice"], code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}))
    consent(world["alice"], {"type": "permit", "provision": [{
        "type": "deny", "code": [{"coding": [{"system": "http://loinc.org", "code": "5221-7"}]}]}]})
    assert fhir.get(f"/Observation/{coded}", headers=doc_token).status_code == 404
    assert fhir.get(f"/Observation/{other}", headers=doc_token).status_code == 200


def test_a_deny_of_a_security_label_hides_resources_labelled_so(fhir, world, doc_token):
    restricted = store(observation(world["alice"], meta={"security": [{"system": CONFIDENTIALITY, "code": "R"}]}))
    normal = store(observation(world["alice"], meta={"security": [{"system": CONFIDENTIALITY, "code": "N"}]}))
    consent(world["alice"], {"type": "permit", "provision": [{
        "type": "deny", "securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]}]})
    assert fhir.get(f"/Observation/{restricted}", headers=doc_token).status_code == 404
    assert fhir.get(f"/Observation/{normal}", headers=doc_token).status_code == 200
    assert restricted not in ids(fhir.get("/Observation", headers=doc_token))


def test_a_deny_for_a_purpose_applies_only_to_tokens_with_that_purpose(fhir, world, alice_data):
    consent(world["alice"], {"type": "permit", "provision": [{
        "type": "deny", "purpose": [{"system": ACT_REASON, "code": "HMARKT"}]}]})
    marketing = bearer(mint("system/*.rs", purpose="HMARKT"))
    treatment = bearer(mint("system/*.rs", purpose="TREAT"))
    assert visible(fhir, world, marketing) == sorted([world["bob"], world["bob_lab"]])
    assert visible(fhir, world, treatment) == sorted([*alice_data, world["bob"], world["bob_lab"]])


def test_a_permit_for_a_purpose_is_all_that_opens_a_deny_consent(fhir, world, alice_data):
    consent(world["alice"], {"type": "deny", "provision": [{
        "type": "permit", "purpose": [{"system": ACT_REASON, "code": "TREAT"}]}]})
    assert visible(fhir, world, bearer(mint("system/*.rs", purpose="TREAT"))) == sorted(
        [*alice_data, world["bob"], world["bob_lab"]])
    assert visible(fhir, world, bearer(mint("system/*.rs", purpose="HRESCH"))) == sorted([world["bob"], world["bob_lab"]])
    assert visible(fhir, world, bearer(mint("system/*.rs"))) == sorted([world["bob"], world["bob_lab"]])


def test_a_provision_applies_only_within_its_period(fhir, world, doc_token, alice_data):
    past = consent(world["alice"], {"type": "deny", "period": {"start": "2001-01-01", "end": "2002-01-01"}})
    assert visible(fhir, world, doc_token) == sorted([*alice_data, world["bob"], world["bob_lab"]])
    repository.update("Consent", past, {**consent_body(world["alice"], {"type": "deny", "period": {
        "start": "2001-01-01", "end": "2999-01-01"}}), "id": past})
    assert visible(fhir, world, doc_token) == sorted([world["bob"], world["bob_lab"]])


def test_a_data_period_hides_only_data_of_that_time(fhir, world, doc_token):
    old = store(observation(world["alice"], effectiveDateTime="2020-03-04"))
    new = store(observation(world["alice"], effectiveDateTime="2024-05-06"))
    consent(world["alice"], {"type": "permit", "provision": [{
        "type": "deny", "dataPeriod": {"start": "2020-01-01", "end": "2020-12-31"}}]})
    assert fhir.get(f"/Observation/{old}", headers=doc_token).status_code == 404
    assert fhir.get(f"/Observation/{new}", headers=doc_token).status_code == 200
    assert fhir.get(f"/Patient/{world['alice']}", headers=doc_token).status_code == 200  # no care date


def test_an_exception_overrides_its_parent_and_a_deny_beats_a_permit_beside_it(fhir, world, doc_token):
    other = store({"resourceType": "Practitioner", "name": [{"family": "Other"}]})
    colleague = bearer(mint("user/*.rs", user=make_user("other"), fhir_user=f"Practitioner/{other}"))
    consent(world["alice"], {"type": "deny", "provision": [
        {"type": "permit", "actor": actor(f"Practitioner/{world['doc']}"), "provision": [
            # an exception to the exception: not Alice's vital signs, for the doctor
            {"type": "deny", "code": [{"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}]}]},
        # siblings: the doctor may see her Encounters, but never her labs
        {"type": "deny", "actor": actor(f"Practitioner/{world['doc']}"),
         "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]},
    ]})
    assert visible(fhir, world, doc_token) == sorted([world["alice"], world["alice_enc"], world["bob"], world["bob_lab"]])
    assert visible(fhir, world, colleague) == sorted([world["bob"], world["bob_lab"]])


# -- the default policy -----------------------------------------------------------------------


def test_default_deny_hides_patients_without_a_permitting_consent(fhir, world, settings, doc_token, alice_data):
    settings.FHIR_CONSENT_DEFAULT = "deny"
    assert visible(fhir, world, doc_token) == []
    assert fhir.get(f"/Practitioner/{world['doc']}", headers=doc_token).status_code == 200  # no patient's data
    consent(world["alice"], {"type": "permit", "actor": actor(f"Practitioner/{world['doc']}")})
    assert visible(fhir, world, doc_token) == alice_data
    assert ids(fhir.get("/Observation", headers=doc_token)) == sorted([world["alice_lab"], world["alice_vital"]])


def test_default_permit_shows_patients_without_consent(fhir, world, settings, doc_token, alice_data):
    settings.FHIR_CONSENT_DEFAULT = "permit"
    consent(world["alice"], {"type": "deny", "actor": actor(f"Practitioner/{world['doc']}")})
    assert visible(fhir, world, doc_token) == sorted([world["bob"], world["bob_lab"]])


# -- break the glass --------------------------------------------------------------------------


def test_etreat_sets_deny_aside_for_a_client_registered_for_it(fhir, world, alice_data):
    consent(world["alice"], {"type": "deny"})
    glass = make_client("emergency", break_glass=True)
    assert visible(fhir, world, bearer(mint("system/*.rs", client=glass, purpose="ETREAT"))) == sorted(
        [*alice_data, world["bob"], world["bob_lab"]])
    # the same purpose from a client without break-glass registration opens nothing
    plain = make_client("plain")
    assert visible(fhir, world, bearer(mint("system/*.rs", client=plain, purpose="ETREAT"))) == sorted(
        [world["bob"], world["bob_lab"]])


def test_etreat_yields_to_a_deny_that_names_etreat(fhir, world):
    consent(world["alice"], {"type": "deny", "purpose": [{"system": ACT_REASON, "code": "ETREAT"}]})
    glass = make_client("emergency", break_glass=True)
    assert visible(fhir, world, bearer(mint("system/*.rs", client=glass, purpose="ETREAT"))) == sorted(
        [world["bob"], world["bob_lab"]])


def test_etreat_opens_a_default_of_deny(fhir, world, settings, alice_data):
    settings.FHIR_CONSENT_DEFAULT = "deny"
    glass = make_client("emergency", break_glass=True)
    assert visible(fhir, world, bearer(mint("system/*.rs", client=glass, purpose="ETREAT"))) == sorted(
        [*alice_data, world["bob"], world["bob_lab"]])


# -- no leaks -----------------------------------------------------------------------------------


@pytest.fixture
def denied(world):
    consent(world["alice"], {"type": "deny", "actor": actor(f"Practitioner/{world['doc']}")})


def test_search_counts_and_totals_leave_denied_data_out(fhir, world, doc_token, denied):
    assert ids(fhir.get("/Observation", headers=doc_token)) == sorted([world["bob_lab"], world["bob_panel"]])
    assert ids(fhir.get("/Patient", headers=doc_token)) == [world["bob"]]
    assert fhir.get("/Observation", headers=doc_token, _summary="count").json()["total"] == 2
    assert fhir.get("/Observation", headers=doc_token, _total="accurate", _count="1").json()["total"] == 2
    assert ids(fhir.get("/", headers=doc_token, _type="Observation,Encounter,Patient")) == sorted(
        [world["bob"], world["bob_enc"], world["bob_lab"], world["bob_panel"]])
    assert ids(fhir.get(f"/Patient/{world['alice']}/Observation", headers=doc_token)) == []


def test_include_and_revinclude_leave_denied_data_out(fhir, world, doc_token, denied):
    # Bob's panel has Alice's lab as a member: including it must not bring it in
    found = ids(fhir.get("/Observation", headers=doc_token, _id=world["bob_panel"], _include="Observation:has-member"))
    assert found == [world["bob_panel"]]
    found = ids(fhir.get("/Practitioner", headers=doc_token, _revinclude="Patient:general-practitioner"))
    assert found == [world["doc"]]
    found = ids(fhir.get("/Encounter", headers=doc_token, _revinclude="Observation:encounter"))
    assert found == sorted([world["bob_enc"], world["bob_lab"]])


def test_chains_and_has_cannot_probe_denied_data(fhir, world, doc_token, denied):
    assert ids(fhir.get("/Observation", headers=doc_token, **{"subject:Patient.family": "Alpha"})) == []
    assert ids(fhir.get("/Observation", headers=doc_token, **{"has-member.status": "final"})) == []
    assert ids(fhir.get("/Practitioner", headers=doc_token, **{"_has:Patient:general-practitioner:family": "Alpha"})) == []
    assert ids(fhir.get("/Observation", headers=doc_token, _filter="subject.family eq Alpha")) == []


def test_deep_chains_under_consent_answer_exactly_or_are_refused_as_too_costly_on_sqlite(
        fhir, world, doc_token, denied, on_postgres):
    """Each link of a chain carries the consent test; SQLite's parser has a fixed depth."""
    found = fhir.get("/Observation", headers=doc_token,
                     **{"encounter.subject:Patient.general-practitioner:Practitioner.name": "Careful"})
    if on_postgres:
        assert ids(found) == []  # Alice's is the only Patient with Careful as GP: denied
    else:
        assert found.status_code == 400
        assert found.json()["issue"][0]["code"] == "too-costly"


def test_history_and_everything_leave_denied_data_out(fhir, world, doc_token, denied):
    repository.update("Observation", world["alice_lab"], {**observation(world["alice"], LAB), "id": world["alice_lab"]})
    for path in ("/Observation/_history", "/_history", f"/Observation/{world['alice_lab']}/_history"):
        response = fhir.get(path, headers=doc_token)
        seen = {e["fullUrl"].rsplit("/", 1)[1] for e in response.json().get("entry", [])} \
            if response.status_code == 200 else set()
        assert not seen & {world["alice"], world["alice_lab"], world["alice_vital"], world["alice_enc"]}
    assert fhir.get(f"/Observation/{world['alice_lab']}/_history/1", headers=doc_token).status_code == 404
    assert fhir.get(f"/Patient/{world['alice']}/$everything", headers=doc_token).status_code == 404
    found = ids(fhir.get(f"/Patient/{world['bob']}/$everything", headers=doc_token))
    assert world["bob_panel"] in found and world["alice_lab"] not in found


def test_denied_writes_fail_403_and_change_nothing(fhir, world, doc_token, denied):
    before = repository.read("Observation", world["alice_lab"]).version_id
    assert fhir.post("/Observation", observation(world["alice"]), headers=doc_token).status_code == 403
    changed = {**observation(world["alice"], LAB), "id": world["alice_lab"]}
    assert fhir.put(f"/Observation/{world['alice_lab']}", changed, headers=doc_token).status_code == 403
    assert fhir.delete(f"/Observation/{world['alice_lab']}", headers=doc_token).status_code == 403
    moved = {**observation(world["alice"]), "id": world["bob_lab"]}  # moving Bob's data to Alice
    assert fhir.put(f"/Observation/{world['bob_lab']}", moved, headers=doc_token).status_code == 403
    assert repository.read("Observation", world["alice_lab"]).version_id == before
    assert fhir.post("/Observation", observation(world["bob"]), headers=doc_token).status_code == 201


# -- the Consent resources themselves -----------------------------------------------------------


def test_a_changed_or_deleted_consent_takes_effect_on_the_next_request(fhir, world, doc_token, alice_data):
    everything = sorted([*alice_data, world["bob"], world["bob_lab"]])
    made = consent(world["alice"], {"type": "deny"})
    assert visible(fhir, world, doc_token) == sorted([world["bob"], world["bob_lab"]])
    repository.update("Consent", made, {**consent_body(world["alice"], {"type": "deny"}), "status": "inactive",
                                        "id": made})
    assert visible(fhir, world, doc_token) == everything
    repository.update("Consent", made, {**consent_body(world["alice"], {"type": "deny"}), "id": made})
    assert visible(fhir, world, doc_token) == sorted([world["bob"], world["bob_lab"]])
    repository.delete("Consent", made)
    assert visible(fhir, world, doc_token) == everything
    assert not ConsentNode.objects.exists()


def test_a_consent_that_cannot_be_enforced_is_refused(fhir, world):
    admin = bearer(mint("system/*.cruds"))
    unknown_policy = consent_body(world["alice"], {"actor": actor(f"Practitioner/{world['doc']}")})
    unknown_policy["policyRule"]["coding"][0]["code"] = "NOPP"
    no_type = fhir.post("/Consent", unknown_policy, headers=admin)
    assert no_type.status_code == 422
    assert "permits or denies" in no_type.json()["issue"][0]["diagnostics"]
    ghost = fhir.post("/Consent", consent_body(world["alice"], {"type": "deny", "actor": actor("Device/nope")}),
                      headers=admin)
    assert ghost.status_code == 422
    assert not ConsentNode.objects.exists()


def test_an_r4_consent_takes_its_base_from_the_policy_rule_and_its_root_provision_is_the_exception(
        fhir, world, doc_token, alice_data):
    """R4: `provision.type` is not permitted in the root rule; OPTIN permits, OPTOUT denies."""
    opt_in = consent(world["alice"], {"actor": actor(f"Practitioner/{world['doc']}")})
    assert visible(fhir, world, doc_token) == sorted([world["bob"], world["bob_lab"]])
    out = consent_body(world["alice"], {"actor": actor(f"Practitioner/{world['doc']}")})
    out["policyRule"]["coding"][0]["code"] = "OPTOUT"
    repository.update("Consent", opt_in, {**out, "id": opt_in})
    assert visible(fhir, world, doc_token) == sorted([*alice_data, world["bob"], world["bob_lab"]])
    other = store({"resourceType": "Practitioner", "name": [{"family": "Other"}]})
    colleague = bearer(mint("user/*.rs", user=make_user("other"), fhir_user=f"Practitioner/{other}"))
    assert visible(fhir, world, colleague) == sorted([world["bob"], world["bob_lab"]])


def test_consents_of_other_scopes_or_drafts_decide_nothing(fhir, world, doc_token, alice_data):
    consent(world["alice"], {"type": "deny"}, status="draft")
    research = consent_body(world["alice"], {"type": "deny"})
    research["scope"]["coding"][0]["code"] = "treatment"
    store(research)
    assert visible(fhir, world, doc_token) == sorted([*alice_data, world["bob"], world["bob_lab"]])
