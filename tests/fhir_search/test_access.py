"""The access filter as SQL (fhir_search.access): what a token reaches is narrowed in the query.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- patient/ scopes reach
the patient's compartment (https://hl7.org/fhir/R4/compartmentdefinition-patient.html), v2
query restrictions narrow a scope to matching resources, and neither results, totals,
chains, `_has` nor includes may show what the token cannot see.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from fhir_search.service import match, search_bundle
from smart_auth.access import Access, current, scopes_of
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


@contextmanager
def acting_as(scope: str, patient: str | None = None, **extra):
    token = current.set(Access(scopes=scopes_of(scope), scope=scope, patient=patient, **extra))
    try:
        yield
    finally:
        current.reset(token)


def ids(bundle: dict) -> list[str]:
    return sorted(e["fullUrl"].rsplit("/", 1)[1] for e in bundle.get("entry", []) if e["search"]["mode"] != "outcome")


def search(resource_type: str | None, params: list[tuple[str, str]]) -> dict:
    return search_bundle(base="http://x/fhir", path=resource_type or "", resource_type=resource_type, params=params)


@pytest.fixture
def two_patients():
    alice = store({"resourceType": "Patient", "gender": "female", "name": [{"family": "Alpha"}]})
    bob = store({"resourceType": "Patient", "gender": "male", "name": [{"family": "Beta"}]})
    lab = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
    vital = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}

    def obs(patient: str, category: dict, performer: str | None = None) -> str:
        body = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "category": [category],
                "subject": {"reference": f"Patient/{patient}"}}
        if performer:
            body["performer"] = [{"reference": f"Patient/{performer}"}]
        return store(body)

    return {
        "alice": alice, "bob": bob,
        "alice_lab": obs(alice, lab), "alice_vital": obs(alice, vital), "bob_lab": obs(bob, lab),
        "shared": obs(alice, vital, performer=bob),  # in both compartments (subject and performer)
    }


def test_without_an_access_context_nothing_is_narrowed(two_patients):
    assert len(ids(search("Observation", []))) == 4


def test_a_patient_scope_reaches_only_that_patients_compartment(two_patients):
    p = two_patients
    with acting_as("patient/*.rs", patient=p["alice"]):
        assert ids(search("Patient", [])) == [p["alice"]]
        assert ids(search("Observation", [])) == sorted([p["alice_lab"], p["alice_vital"], p["shared"]])
        assert search("Observation", [("_summary", "count")])["total"] == 3


def test_counts_do_not_leak_other_patients(two_patients):
    p = two_patients
    with acting_as("patient/*.rs", patient=p["bob"]):
        bundle = search("Observation", [("_total", "accurate")])
        assert bundle["total"] == 2 and ids(bundle) == sorted([p["bob_lab"], p["shared"]])


def test_includes_only_add_resources_the_token_may_read(two_patients):
    p = two_patients
    with acting_as("patient/*.rs", patient=p["alice"]):
        bundle = search("Observation", [("_id", p["shared"]), ("_include", "Observation:performer")])
        assert ids(bundle) == [p["shared"]]  # Bob, the performer, is not Alice's to see
        bundle = search("Patient", [("_revinclude", "Observation:performer")])
        assert ids(bundle) == [p["alice"]]


def test_chains_and_has_cannot_probe_another_patient(two_patients):
    p = two_patients
    with acting_as("patient/*.rs", patient=p["alice"]):
        # `shared` has Bob as performer; the chain must not see Bob's name.
        assert ids(search("Observation", [("performer:Patient.family", "Beta")])) == []
        assert ids(search("Patient", [("_has:Observation:patient:category", "laboratory")])) == [p["alice"]]
    with acting_as("patient/Observation.rs", patient=p["alice"]):
        # No Patient scope at all: a chain into Patient finds nothing.
        assert ids(search("Observation", [("subject:Patient.family", "Alpha")])) == []
    with acting_as("patient/*.rs", patient=p["bob"]):
        assert ids(search("Patient", [("_has:Observation:patient:category", "vital-signs")])) == []


def test_a_query_restricted_scope_narrows_exactly(two_patients):
    p = two_patients
    scope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    with acting_as(scope, patient=p["alice"]):
        assert ids(search("Observation", [])) == [p["alice_lab"]]
    with acting_as(scope.replace("patient/", "system/")):
        assert ids(search("Observation", [])) == sorted([p["alice_lab"], p["bob_lab"]])


def test_scopes_are_combined_with_or(two_patients):
    p = two_patients
    scope = ("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory "
             "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs")
    with acting_as(scope, patient=p["bob"]):
        assert ids(search("Observation", [])) == sorted([p["bob_lab"], p["shared"]])


def test_a_type_without_a_scope_is_empty_in_system_search(two_patients):
    p = two_patients
    with acting_as("patient/Observation.rs", patient=p["alice"]):
        assert ids(search(None, [])) == sorted([p["alice_lab"], p["alice_vital"], p["shared"]])
        assert ids(search(None, [("_type", "Patient,Observation")])) == sorted(
            [p["alice_lab"], p["alice_vital"], p["shared"]])


def test_a_patient_scope_without_a_patient_reaches_nothing(two_patients):
    with acting_as("patient/*.rs", patient=None):
        assert ids(search("Observation", [])) == []


def test_a_user_scope_of_a_patient_user_is_their_compartment(two_patients):
    p = two_patients
    with acting_as("user/*.rs", user_compartment=p["bob"], fhir_user=f"Patient/{p['bob']}"):
        assert ids(search("Patient", [])) == [p["bob"]]
    with acting_as("user/*.rs", user_compartment=""):
        assert ids(search("Patient", [])) == []
    with acting_as("user/*.rs", user_compartment=None, fhir_user="Practitioner/1"):
        assert ids(search("Patient", [])) == sorted([p["alice"], p["bob"]])


def test_conditional_matches_are_narrowed_by_the_write_interaction(two_patients):
    p = two_patients
    with acting_as("patient/Observation.cruds", patient=p["alice"]):
        assert match("Observation", [("category", "laboratory")], limit=5, interaction="u") == [p["alice_lab"]]
    with acting_as("patient/Observation.rs", patient=p["alice"]):
        assert match("Observation", [("category", "laboratory")], limit=5, interaction="u") == []
