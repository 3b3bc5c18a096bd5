"""Reverse chaining with _has, nested (https://hl7.org/fhir/R4/search.html#has)."""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db
LOINC = "http://loinc.org"


@pytest.fixture
def world():
    a = store({"resourceType": "Patient", "name": [{"family": "A"}]})
    b = store({"resourceType": "Patient", "name": [{"family": "B"}]})
    store({"resourceType": "Patient", "name": [{"family": "C"}]})
    obs_a = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": f"Patient/{a}"},
            "code": {"coding": [{"system": LOINC, "code": "1234-5"}]},
        }
    )
    store(
        {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": f"Patient/{b}"},
            "code": {"coding": [{"system": LOINC, "code": "9999-9"}]},
        }
    )
    store(
        {
            "resourceType": "Provenance",
            "recorded": "2021-01-01T00:00:00Z",
            "target": [{"reference": f"Observation/{obs_a}"}],
            "agent": [{"who": {"reference": "Practitioner/dr"}}],
        }
    )
    return {"a": a, "b": b}


def test_has_finds_resources_referred_to_by_matching_resources(search, world):
    assert search.ids("/Patient", {"_has:Observation:patient:code": "1234-5"}) == [world["a"]]
    assert search.idset("/Patient", {"_has:Observation:subject:status": "final"}) == {world["a"], world["b"]}


def test_nested_has(search, world):
    query = {"_has:Observation:patient:_has:Provenance:target:agent": "Practitioner/dr"}
    assert search.ids("/Patient", query) == [world["a"]]


def test_has_with_a_chain_at_the_end(search, world):
    assert search.ids("/Patient", {"_has:Observation:patient:subject:Patient.name": "b"}) == [world["b"]]


def test_has_and_other_parameters_combine(search, world):
    assert search.ids("/Patient", [("_has:Observation:patient:status", "final"), ("name", "b")]) == [
        world["b"]
    ]


def test_malformed_has_is_a_bad_request(search, world):
    search.bundle("/Patient", {"_has:Observation:patient": "x"}, status=400)
    search.bundle(
        "/Patient",
        {"_has:Observation:code:status": "final"},
        status=400,
        headers={"Prefer": "handling=strict"},
    )
