"""Fixtures for enforcement tests: two patients with data, and tokens for them."""
from __future__ import annotations

from typing import Any

import pytest

from fhir_api.store import repository

LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
VITAL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}


def store(body: dict[str, Any]) -> str:
    return repository.create(body["resourceType"], body).stored.logical_id


def observation(patient: str, category: dict | None = None, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
            "category": [category or VITAL], "subject": {"reference": f"Patient/{patient}"}, **extra}


@pytest.fixture
def world(db) -> dict[str, str]:
    """Alice and Bob, each with an Encounter and Observations; a Practitioner who saw both."""
    doc = store({"resourceType": "Practitioner", "name": [{"family": "Careful"}]})
    alice = store({"resourceType": "Patient", "name": [{"family": "Alpha"}], "gender": "female",
                   "generalPractitioner": [{"reference": f"Practitioner/{doc}"}]})
    bob = store({"resourceType": "Patient", "name": [{"family": "Beta"}], "gender": "male"})
    alice_enc = store({"resourceType": "Encounter", "status": "finished",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                       "subject": {"reference": f"Patient/{alice}"},
                       "participant": [{"individual": {"reference": f"Practitioner/{doc}"}}]})
    bob_enc = store({"resourceType": "Encounter", "status": "finished",
                     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                     "subject": {"reference": f"Patient/{bob}"}})
    alice_lab = store(observation(alice, LAB, encounter={"reference": f"Encounter/{alice_enc}"}))
    alice_vital = store(observation(alice, VITAL))
    bob_lab = store(observation(bob, LAB, encounter={"reference": f"Encounter/{bob_enc}"}))
    # Bob's observation whose `hasMember` points at Alice's: :iterate must not cross over.
    bob_panel = store(observation(bob, LAB, hasMember=[{"reference": f"Observation/{alice_lab}"}]))
    return {"doc": doc, "alice": alice, "bob": bob, "alice_enc": alice_enc, "bob_enc": bob_enc,
            "alice_lab": alice_lab, "alice_vital": alice_vital, "bob_lab": bob_lab, "bob_panel": bob_panel}
