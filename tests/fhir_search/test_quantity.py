"""Quantity search: number|system|code, canonical UCUM units, prefixes, Ranges.

https://hl7.org/fhir/R4/search.html#quantity
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db
UCUM = "http://unitsofmeasure.org"


def measured(
    value: float, code: str | None = "mg", system: str | None = UCUM, unit: str | None = None
) -> str:
    quantity = {"value": value}
    if code:
        quantity["code"] = code
    if system:
        quantity["system"] = system
    if unit:
        quantity["unit"] = unit
    return store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "weight"},
            "valueQuantity": quantity,
        }
    )


def test_value_only_ignores_units(search):
    mg = measured(5.4, "mg")
    g = measured(5.4, "g")
    assert search.idset("/Observation", {"value-quantity": "5.4"}) == {mg, g}


def test_system_and_code_must_match(search):
    mg = measured(5.4, "mg")
    measured(5.4, "mg", system="http://other.example")
    assert search.idset("/Observation", {"value-quantity": f"5.4|{UCUM}|mg"}) == {mg}


def test_code_without_system_matches_any_system(search):
    a = measured(5.4, "mg")
    b = measured(5.4, "mg", system=None)
    measured(5.4, "mmol/L")
    assert search.idset("/Observation", {"value-quantity": "5.4||mg"}) == {a, b}


def test_canonical_units_compare_across_scales(search):
    mg = measured(1500, "mg")
    g = measured(1.5, "g")
    kg = measured(0.0015, "kg")
    measured(1.5, "mg")
    assert search.idset("/Observation", {"value-quantity": f"1.5|{UCUM}|g"}) == {mg, g, kg}
    assert search.idset("/Observation", {"value-quantity": f"gt1|{UCUM}|g"}) == {mg, g, kg}


def test_concentration_units_convert(search):
    dl = measured(100, "mg/dL")
    measured(100, "mg/L")
    assert search.idset("/Observation", {"value-quantity": f"1|{UCUM}|g/L"}) == {dl}


def test_unconvertible_units_still_match_as_written(search):
    hg = measured(120, "mm[Hg]")
    assert search.idset("/Observation", {"value-quantity": f"120|{UCUM}|mm[Hg]"}) == {hg}
    assert search.idset("/Observation", {"value-quantity": "lt130||mm[Hg]"}) == {hg}


def test_unit_text_when_there_is_no_code(search):
    kilos = measured(70, None, system=None, unit="kilos")
    assert search.idset("/Observation", {"value-quantity": "70||kilos"}) == {kilos}


def test_money_uses_the_currency_as_unit(search):
    invoice = store(
        {"resourceType": "Invoice", "status": "issued", "totalNet": {"value": 99.99, "currency": "EUR"}}
    )
    assert search.idset("/Invoice", {"totalnet": "99.99|urn:iso:std:iso:4217|EUR"}) == {invoice}
    assert search.idset("/Invoice", {"totalnet": "gt100"}) == set()


def test_malformed_quantity_is_a_bad_request(search):
    search.bundle("/Observation", {"value-quantity": "five|mg"}, status=400)
