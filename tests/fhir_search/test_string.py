"""String search: starts-with, case and accents folded, :exact, :contains, :missing.

https://hl7.org/fhir/R4/search.html#string
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def patient(family: str, *given: str, **extra) -> str:
    name = {"family": family, **({"given": list(given)} if given else {})}
    return store({"resourceType": "Patient", "name": [name], **extra})


def test_string_matches_the_start_of_a_value_ignoring_case(search):
    smith = patient("Smith", "John")
    patient("Blacksmith", "Jane")
    assert search.ids("/Patient", {"family": "smi"}) == [smith]
    assert search.ids("/Patient", {"family": "SMITH"}) == [smith]


def test_string_ignores_accents_both_ways(search):
    zoe = patient("Zoë")
    assert search.ids("/Patient", {"family": "zoe"}) == [zoe]
    assert search.ids("/Patient", {"family": "ZOË"}) == [zoe]
    plain = patient("Muller")
    assert set(search.ids("/Patient", {"family": "Müller"})) == {plain}


def test_name_matches_any_part_of_a_human_name(search):
    pid = patient("Chalmers", "Peter", "James", address=[{"city": "Amsterdam"}])
    store({"resourceType": "Patient", "name": [{"text": "Bob the builder"}]})
    assert search.ids("/Patient", {"name": "james"}) == [pid]
    assert search.ids("/Patient", {"name": "chal"}) == [pid]
    assert len(search.ids("/Patient", {"name": "bob"})) == 1
    assert search.ids("/Patient", {"address": "amster"}) == [pid]
    assert search.ids("/Patient", {"address-city": "AMSTERDAM"}) == [pid]


def test_exact_compares_case_and_accents_and_whole_value(search):
    zoe = patient("Zoë")
    patient("Zoe")
    patient("Zoëlla")
    assert search.ids("/Patient", {"family:exact": "Zoë"}) == [zoe]
    assert search.ids("/Patient", {"family:exact": "zoë"}) == []


def test_contains_matches_anywhere(search):
    black = patient("Blacksmith")
    smith = patient("Smith")
    patient("Jones")
    assert search.idset("/Patient", {"family:contains": "SMI"}) == {black, smith}


def test_comma_is_or_and_repeated_parameter_is_and(search):
    a = patient("Alpha", "Xavier")
    b = patient("Beta", "Xavier")
    patient("Gamma", "Yann")
    assert search.idset("/Patient", {"family": "alpha,beta"}) == {a, b}
    assert search.ids("/Patient", [("given", "xav"), ("family", "bet")]) == [b]


def test_escaped_comma_is_part_of_the_value(search):
    odd = patient("Smith, Jr")
    patient("Smith")
    assert search.ids("/Patient", {"family:exact": "Smith\\, Jr"}) == [odd]


def test_missing_true_finds_resources_without_the_element(search):
    named = patient("Named")
    nameless = store({"resourceType": "Patient", "gender": "other"})
    assert search.ids("/Patient", {"family:missing": "true"}) == [nameless]
    assert search.ids("/Patient", {"family:missing": "false"}) == [named]
