"""Number search: implicit precision of the query value, prefixes, Ranges.

https://hl7.org/fhir/R4/search.html#number
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def risk(probability) -> str:
    prediction = (
        {"probabilityRange": probability}
        if isinstance(probability, dict)
        else {"probabilityDecimal": probability}
    )
    return store(
        {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/p"},
            "prediction": [prediction],
        }
    )


def charge(factor: float) -> str:
    return store(
        {
            "resourceType": "ChargeItem",
            "status": "billable",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/p"},
            "factorOverride": factor,
        }
    )


@pytest.fixture
def factors():
    return {v: charge(v) for v in (99.4, 99.5, 100, 100.4, 100.5, 101)}


def test_query_precision_sets_the_matching_range(search, factors):
    """100 means [99.5, 100.5): 99.5 and 100.4 match, 100.5 does not."""
    found = search.idset("/ChargeItem", {"factor-override": "100"})
    assert found == {factors[99.5], factors[100], factors[100.4]}


def test_more_digits_narrow_the_range(search, factors):
    assert search.idset("/ChargeItem", {"factor-override": "100.0"}) == {factors[100]}
    assert search.idset("/ChargeItem", {"factor-override": "1e2"}) == set(factors.values())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gt100", {100.4, 100.5, 101}),
        ("ge100", {100, 100.4, 100.5, 101}),
        ("lt100", {99.4, 99.5}),
        ("le100", {99.4, 99.5, 100}),
        ("sa100.4", {100.5, 101}),
        ("eb99.5", {99.4}),
        ("ne100", {99.4, 100.5, 101}),
        ("ap100", {99.4, 99.5, 100, 100.4, 100.5, 101}),
    ],
)
def test_number_prefixes(search, factors, query, expected):
    assert search.idset("/ChargeItem", {"factor-override": query}) == {factors[v] for v in expected}


def test_a_range_value_is_compared_as_a_range(search):
    point = risk(0.3)
    spread = risk({"low": {"value": 0.2}, "high": {"value": 0.4}})
    assert search.idset("/RiskAssessment", {"probability": "gt0.35"}) == {spread}
    assert search.idset("/RiskAssessment", {"probability": "0.3"}) == {point}


def test_malformed_numbers_are_a_bad_request(search):
    search.bundle("/ChargeItem", {"factor-override": "ten"}, status=400)
