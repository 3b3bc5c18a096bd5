"""_sort on any parameter, several keys, descending with '-', ties broken by row id.

https://hl7.org/fhir/R4/search.html#sort
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def patient(family: str | None, birth: str | None = None, given: str | None = None) -> str:
    body: dict = {"resourceType": "Patient"}
    if family or given:
        body["name"] = [{k: v for k, v in (("family", family), ("given", [given] if given else None)) if v}]
    if birth:
        body["birthDate"] = birth
    return store(body)


def test_sort_by_string_ascending_and_descending(search):
    b = patient("Beta")
    a = patient("alpha")
    c = patient("Čapek")  # folded: capek
    assert search.ids("/Patient", {"_sort": "family"}) == [a, b, c]
    assert search.ids("/Patient", {"_sort": "-family"}) == [c, b, a]


def test_resources_without_a_value_come_last_both_ways(search):
    none = patient(None, "2000-01-01")
    a = patient("A")
    b = patient("B")
    assert search.ids("/Patient", {"_sort": "family"}) == [a, b, none]
    assert search.ids("/Patient", {"_sort": "-family"}) == [b, a, none]


def test_several_sort_keys(search):
    x1 = patient("Same", "2001-01-01")
    x2 = patient("Same", "1999-01-01")
    y = patient("Other", "2005-01-01")
    assert search.ids("/Patient", {"_sort": "family,-birthdate"}) == [y, x1, x2]
    assert search.ids("/Patient", {"_sort": "family,birthdate"}) == [y, x2, x1]


def test_multiple_values_sort_by_lowest_ascending_and_highest_descending(search):
    # names "a" and "z" on one patient; "m" on another
    both = store({"resourceType": "Patient", "name": [{"family": "z"}, {"family": "a"}]})
    middle = patient("m")
    assert search.ids("/Patient", {"_sort": "family"}) == [both, middle]
    assert search.ids("/Patient", {"_sort": "-family"}) == [both, middle]


def test_ties_keep_creation_order(search):
    ids = [patient("Same") for _ in range(5)]
    assert search.ids("/Patient", {"_sort": "family"}) == ids
    assert search.ids("/Patient", {"_sort": "-family"}) == ids


def test_sort_by_dates_tokens_id_and_last_updated(search):
    old = patient("X", "1950-05-05")
    young = patient("Y", "2010-05-05")
    assert search.ids("/Patient", {"_sort": "-birthdate"}) == [young, old]
    assert search.ids("/Patient", {"_sort": "-_lastUpdated"}) == [young, old]
    assert search.ids("/Patient", {"_sort": "_id"}) == sorted([old, young])


def test_sort_by_quantity(search):
    def weight(value: float) -> str:
        return store(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "w"},
                "valueQuantity": {"value": value},
            }
        )

    heavy, light = weight(90), weight(60)
    assert search.ids("/Observation", {"_sort": "value-quantity"}) == [light, heavy]


def test_unknown_sort_parameter(search):
    patient("A")
    search.bundle("/Patient", {"_sort": "nonsense"}, status=400, headers={"Prefer": "handling=strict"})
    lenient = search.bundle("/Patient", {"_sort": "nonsense"})
    assert "_sort" not in lenient["link"][0]["url"]
