"""Break the glass is always audited as such (issue 9; hl7.org/fhir/R4/security-labels.html#break-the-glass).

Every event of a request made under break-the-glass (ETREAT from a client registered for it)
carries purposeOfEvent ETREAT and the break-the-glass security label (v3-ActReason BTG) in
meta.security; where a Consent deny was set aside for what the request read or wrote, the
event also has the DICOM 110127 "Emergency Override Started" subtype and names each resource
only the override let through. Auditors find them with `_security` and `subtype`.
"""
from __future__ import annotations

import json

import pytest

from fhir_api.store.models import Resource
from tests.access_tokens import bearer, make_client, make_user, mint
from tests.smart_enforcement.conftest import LAB, observation, store, world  # noqa: F401 (fixture)
from tests.smart_enforcement.test_consent import ACT_REASON, consent

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
BTG = {"system": ACT_REASON, "code": "BTG", "display": "break the glass"}


def events() -> list[dict]:
    rows = Resource.objects.filter(resource_type="AuditEvent").order_by("id").values_list("data", flat=True)
    return [json.loads(r) for r in rows]


def last(interaction: str) -> dict:
    return [e for e in events() if e["subtype"][0]["code"] == interaction][-1]


def overridden(event: dict) -> list[str]:
    return sorted(e["what"]["reference"] for e in event.get("entity", ())
                  if e.get("description", "").startswith("consent deny set aside"))


def is_override(event: dict) -> bool:
    return any(s.get("system") == DCM and s["code"] == "110127" for s in event["subtype"])


@pytest.fixture
def glass():
    """A token of an app registered for break-the-glass, with ETREAT."""
    client = make_client("emergency", break_glass=True)
    return bearer(mint("system/*.cruds", client=client, purpose="ETREAT"))


@pytest.fixture
def alice_denied(world):
    """Alice's Consent denies her laboratory result to everyone (ETREAT not named)."""
    consent(world["alice"], {"type": "permit", "provision": [
        {"type": "deny", "data": [{"meaning": "instance",
                                   "reference": {"reference": f"Observation/{world['alice_lab']}"}}]}]})
    return world


def test_a_read_that_only_break_the_glass_allows_is_marked_as_an_override(fhir, alice_denied, glass):
    lab = alice_denied["alice_lab"]
    assert fhir.get(f"/Observation/{lab}", headers=glass).status_code == 200
    event = last("read")
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert BTG in event["meta"]["security"]
    assert is_override(event) and event["subtype"][1]["display"] == "Emergency Override Started"
    assert overridden(event) == [f"Observation/{lab}"]


def test_a_break_the_glass_read_the_consent_allows_anyway_is_labelled_but_not_an_override(
        fhir, alice_denied, glass):
    vital = alice_denied["alice_vital"]  # the deny names the laboratory result only
    assert fhir.get(f"/Observation/{vital}", headers=glass).status_code == 200
    event = last("read")
    assert BTG in event["meta"]["security"] and event["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert not is_override(event) and overridden(event) == []


def test_a_search_names_exactly_the_resources_only_the_override_let_through(fhir, alice_denied, glass):
    world = alice_denied
    found = fhir.get(f"/Observation?subject=Patient/{world['alice']}", headers=glass).json()
    assert {e["resource"]["id"] for e in found["entry"]} == {world["alice_lab"], world["alice_vital"]}
    event = last("search-type")
    assert is_override(event) and overridden(event) == [f"Observation/{world['alice_lab']}"]
    # _include and $everything answers are checked the same way
    fhir.get(f"/Patient/{world['alice']}/$everything", headers=glass)
    assert overridden(last("operation")) == [f"Observation/{world['alice_lab']}"]


def test_the_same_requests_without_break_the_glass_carry_no_mark(fhir, alice_denied):
    plain = bearer(mint("system/*.rs", client=make_client("ward app"), purpose="TREAT"))
    assert fhir.get(f"/Observation/{alice_denied['alice_lab']}", headers=plain).status_code == 404
    assert fhir.get(f"/Observation/{alice_denied['alice_vital']}", headers=plain).status_code == 200
    for event in events():
        assert "security" not in event.get("meta", {}) and not is_override(event)


def test_an_etreat_token_of_an_app_no_longer_registered_for_it_is_not_break_the_glass(fhir, alice_denied):
    client = make_client("was emergency", break_glass=True)
    token = bearer(mint("system/*.rs", client=client, purpose="ETREAT"))
    client.break_glass = False
    client.save()
    assert fhir.get(f"/Observation/{alice_denied['alice_lab']}", headers=token).status_code == 404
    assert "security" not in last("read").get("meta", {})


def test_a_write_that_only_break_the_glass_allows_is_marked_in_its_own_transaction(fhir, world, glass):
    consent(world["alice"], {"type": "deny", "action": [{"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "correct"}]}]})
    lab = world["alice_lab"]
    body = {**observation(world["alice"], LAB), "id": lab, "status": "amended"}
    doc = bearer(mint("user/*.cruds", user=make_user("doc"), fhir_user=f"Practitioner/{world['doc']}"))
    assert fhir.put(f"/Observation/{lab}", body, headers=doc).status_code == 403
    assert fhir.put(f"/Observation/{lab}", body, headers=glass).status_code == 200
    event = last("update")
    assert event["outcome"] == "0" and BTG in event["meta"]["security"]
    assert is_override(event) and overridden(event) == [f"Observation/{lab}"]
    # a write no consent denies (Bob has none) is labelled, not an override
    bob_obs = store(observation(world["bob"]))
    assert fhir.put(f"/Observation/{bob_obs}", {**observation(world["bob"]), "id": bob_obs},
                    headers=glass).status_code == 200
    assert not is_override(last("update"))


def test_auditors_find_overrides_by_subtype_and_break_the_glass_use_by_security_label(fhir, alice_denied, glass):
    world = alice_denied
    fhir.get(f"/Observation/{world['alice_lab']}", headers=glass)  # override
    fhir.get(f"/Observation/{world['alice_vital']}", headers=glass)  # break-the-glass, no override
    fhir.get(f"/Patient/{world['bob']}", headers=bearer(mint("system/*.rs")))  # neither
    auditor = bearer(mint("system/AuditEvent.rs"))

    def found(query: str) -> list[str]:
        bundle = fhir.get(f"/AuditEvent?{query}", headers=auditor).json()
        return sorted(e["resource"]["entity"][-1]["what"]["reference"].split("/_history")[0]
                      for e in bundle.get("entry", ()) if e["resource"]["subtype"][0]["code"] == "read")

    assert found(f"subtype={DCM}|110127") == [f"Observation/{world['alice_lab']}"]
    assert found(f"_security={ACT_REASON}|BTG") == sorted(
        [f"Observation/{world['alice_lab']}", f"Observation/{world['alice_vital']}"])
    assert found(f"subtype={DCM}|110127&entity=Observation/{world['alice_lab']}") == [
        f"Observation/{world['alice_lab']}"]
