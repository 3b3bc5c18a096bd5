"""Composite search: all components must match within the same element.

https://hl7.org/fhir/R4/search.html#composite
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def blood_pressure(systolic: float, diastolic: float) -> str:
    def component(code: str, value: float) -> dict:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "system": UCUM, "code": "mm[Hg]"},
        }

    return store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [component("8480-6", systolic), component("8462-4", diastolic)],
        }
    )


def test_code_value_quantity_on_the_observation(search):
    heavy = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "valueQuantity": {"value": 90, "system": UCUM, "code": "kg"},
        }
    )
    store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "valueQuantity": {"value": 60, "system": UCUM, "code": "kg"},
        }
    )
    assert search.ids("/Observation", {"code-value-quantity": f"{LOINC}|29463-7$gt80"}) == [heavy]
    assert search.ids("/Observation", {"code-value-quantity": f"29463-7$90000|{UCUM}|g"}) == [heavy]


def test_components_match_in_the_same_component_only(search):
    high = blood_pressure(150, 95)
    blood_pressure(120, 80)
    query = f"{LOINC}|8480-6$gt140"
    assert search.ids("/Observation", {"component-code-value-quantity": query}) == [high]
    # 95 is a diastolic value: systolic > 90 and < 100 belongs to no single component
    assert (
        search.ids(
            "/Observation",
            [
                ("component-code-value-quantity", "8480-6$lt100"),
                ("component-code-value-quantity", "8462-4$gt90"),
            ],
        )
        == []
    )


def test_combo_covers_the_observation_and_its_components(search):
    bp = blood_pressure(130, 85)
    assert search.ids("/Observation", {"combo-code-value-quantity": "8462-4$85"}) == [bp]


def test_code_value_concept_and_string(search):
    positive = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"code": "covid"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]},
        }
    )
    noted = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"code": "note"}]},
            "valueString": "Ça va bien",
        }
    )
    assert search.ids("/Observation", {"code-value-concept": "covid$http://snomed.info/sct|10828004"}) == [
        positive
    ]
    assert search.ids("/Observation", {"code-value-string": "note$ca va"}) == [noted]


def test_code_value_date(search):
    dated = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"code": "lmp"}]},
            "valueDateTime": "2021-03-04",
        }
    )
    assert search.ids("/Observation", {"code-value-date": "lmp$2021-03"}) == [dated]
    assert search.ids("/Observation", {"code-value-date": "lmp$gt2021-04"}) == []


def test_escaped_dollar_is_part_of_a_value(search):
    odd = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"code": "a$b"}]},
            "valueString": "x",
        }
    )
    assert search.ids("/Observation", {"code-value-string": "a\\$b$x"}) == [odd]


def test_wrong_number_of_components_is_a_bad_request(search):
    search.bundle("/Observation", {"code-value-quantity": "8480-6"}, status=400)
