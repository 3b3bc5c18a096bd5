"""Chained parameters, to any depth (https://hl7.org/fhir/R4/search.html#chaining)."""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    careful = store({"resourceType": "Practitioner", "name": [{"family": "Careful"}]})
    hasty = store({"resourceType": "Practitioner", "name": [{"family": "Hasty"}]})
    peter = store(
        {
            "resourceType": "Patient",
            "name": [{"family": "Chalmers", "given": ["Peter"]}],
            "generalPractitioner": [{"reference": f"Practitioner/{careful}"}],
        }
    )
    zoe = store(
        {
            "resourceType": "Patient",
            "name": [{"family": "Zoë"}],
            "generalPractitioner": [{"reference": f"Practitioner/{hasty}"}],
        }
    )
    wing = store({"resourceType": "Location", "name": "Chalmers wing"})

    def obs(subject: str) -> str:
        return store(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": subject},
            }
        )

    return {
        "peter": peter,
        "zoe": zoe,
        "careful": careful,
        "obs_peter": obs(f"Patient/{peter}"),
        "obs_zoe": obs(f"Patient/{zoe}"),
        "obs_wing": obs(f"Location/{wing}"),
    }


def test_chain_with_type_modifier(search, world):
    assert search.ids("/Observation", {"subject:Patient.name": "peter"}) == [world["obs_peter"]]


def test_chain_without_type_tries_every_target_that_has_the_parameter(search, world):
    found = search.idset("/Observation", {"subject.name": "chalmers"})
    assert found == {world["obs_peter"], world["obs_wing"]}  # a Patient's name, a Location's name


def test_chain_through_a_parameter_restricted_to_one_type(search, world):
    assert search.ids("/Observation", {"patient.name": "zoe"}) == [world["obs_zoe"]]


def test_chain_two_levels_deep(search, world):
    assert search.ids("/Observation", {"patient.general-practitioner.name": "careful"}) == [
        world["obs_peter"]
    ]
    assert search.ids("/Observation", {"patient.general-practitioner:Practitioner.family": "hasty"}) == [
        world["obs_zoe"]
    ]


def test_chain_ends_in_any_parameter_type_and_modifier(search, world):
    assert search.ids("/Observation", {"patient._id": world["zoe"]}) == [world["obs_zoe"]]
    assert search.ids("/Observation", {"patient.name:exact": "Zoë"}) == [world["obs_zoe"]]


def test_chain_values_are_ored(search, world):
    assert search.idset("/Observation", {"patient.name": "peter,zoe"}) == {
        world["obs_peter"],
        world["obs_zoe"],
    }


def test_deleted_targets_do_not_match(search, world):
    from fhir_api.store import repository

    repository.delete("Patient", world["zoe"])
    assert search.ids("/Observation", {"patient.name": "zoe"}) == []


def test_unknown_chained_parameter(search, world):
    search.bundle(
        "/Observation", {"patient.nonsense": "x"}, status=400, headers={"Prefer": "handling=strict"}
    )
    search.bundle("/Observation", {"status.name": "x"}, status=400, headers={"Prefer": "handling=strict"})
