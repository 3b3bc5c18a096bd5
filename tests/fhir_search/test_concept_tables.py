"""The concept tables: code systems indexed once, searched and expanded in SQL.

https://hl7.org/fhir/R4/codesystem.html#hierarchy and https://hl7.org/fhir/R4/search.html#token
-- a stored CodeSystem's concepts and hierarchy closure are written with it and replaced or
dropped with it; `:below`, `:above`, `:in` and `:not-in` join those tables; a 100,000-concept
system expands by pages and looks codes up in milliseconds.
"""
from __future__ import annotations

import time

import pytest

from fhir_api.store import repository
from fhir_search import concepts, terminology
from fhir_search.models import CodeSystemIndex, ConceptAncestor, ConceptIndex
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db

TREE = "http://example.org/cs/tree"


def tree(*extra: dict) -> dict:
    return {"resourceType": "CodeSystem", "url": TREE, "status": "active", "content": "complete", "concept": [
        {"code": "a", "concept": [{"code": "a1", "concept": [{"code": "a1x"}]}, {"code": "a2"}]},
        {"code": "b", "property": [{"code": "parent", "valueCode": "a"}]}, *extra]}


def observation(code: str) -> str:
    return store({"resourceType": "Observation", "status": "final",
                  "code": {"coding": [{"system": TREE, "code": code}]}})


def test_a_written_code_system_is_indexed_with_its_closure():
    store(tree())
    header = concepts.code_system(TREE)
    assert set(ConceptIndex.objects.filter(code_system=header).values_list("code", flat=True)) == \
        {"a", "a1", "a1x", "a2", "b"}
    a1x = concepts.concept(header, "a1x")
    depth = dict(ConceptAncestor.objects.filter(descendant=a1x).values_list("ancestor__code", "depth"))
    assert depth == {"a1x": 0, "a1": 1, "a": 2}
    assert [c.code for c in concepts.related(concepts.concept(header, "a"), up=False)] == ["a1", "a2", "b"]


def test_update_replaces_and_delete_drops_the_concepts():
    cs_id = store(tree())
    repository.update("CodeSystem", cs_id, {**tree({"code": "c"}), "id": cs_id})
    header = concepts.code_system(TREE)
    assert concepts.concept(header, "c") is not None
    assert CodeSystemIndex.objects.filter(url=TREE).count() == 1
    repository.delete("CodeSystem", cs_id)
    assert not CodeSystemIndex.objects.filter(url=TREE).exists()
    with pytest.raises(terminology.TerminologyError):
        concepts.code_system(TREE)


def test_a_stored_code_system_takes_the_place_of_a_shipped_one_with_its_url():
    url = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    assert concepts.code_system(url).resource_id is None
    store({"resourceType": "CodeSystem", "url": url, "status": "active", "content": "complete",
           "concept": [{"code": "only"}]})
    header = concepts.code_system(url)
    assert header.resource_id is not None
    assert list(ConceptIndex.objects.filter(code_system=header).values_list("code", flat=True)) == ["only"]


def test_below_and_above_search_through_the_closure(search):
    store(tree())
    ids = {code: observation(code) for code in ("a", "a1", "a1x", "a2", "b")}
    assert search.idset("/Observation", {"code:below": f"{TREE}|a1"}) == {ids["a1"], ids["a1x"]}
    assert search.idset("/Observation", {"code:above": f"{TREE}|a1x"}) == {ids["a"], ids["a1"], ids["a1x"]}
    assert search.idset("/Observation", {"code:below": f"{TREE}|a"}) == set(ids.values())


def test_in_and_not_in_join_a_filtered_value_set(search):
    store(tree())
    store({"resourceType": "ValueSet", "url": "http://example.org/vs/a1", "status": "active", "compose": {
        "include": [{"system": TREE, "filter": [{"property": "concept", "op": "is-a", "value": "a1"}]},
                    {"system": "http://loinc.org", "concept": [{"code": "8867-4"}]}]}})
    ids = {code: observation(code) for code in ("a", "a1", "a1x")}
    heart = store({"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}})
    assert search.idset("/Observation", {"code:in": "http://example.org/vs/a1"}) == {ids["a1"], ids["a1x"], heart}
    assert search.idset("/Observation", {"code:not-in": "http://example.org/vs/a1"}) == {ids["a"]}


def test_a_hundred_thousand_concepts_expand_by_pages_and_look_up_in_milliseconds():
    groups = [{"code": f"G{g:03}", "display": f"Group {g}",
               "concept": [{"code": f"G{g:03}-{i:04}", "display": f"Item {i} of group {g}"} for i in range(999)]}
              for g in range(100)]
    header = concepts.index_code_system({"resourceType": "CodeSystem", "url": "http://example.org/big",
                                         "status": "active", "content": "complete", "concept": groups})
    assert header is not None
    assert ConceptIndex.objects.filter(code_system=header).count() == 100_000

    vs = {"resourceType": "ValueSet", "compose": {"include": [{"system": "http://example.org/big"}]}}
    started = time.perf_counter()
    expansion = terminology.expansion_of(vs)
    rows = expansion.rows().order_by("code_system_id", "code")
    assert rows.count() == 100_000
    page = list(rows[60_000:60_010].values_list("code", flat=True))
    found = concepts.concept(header, "G042-0420")
    parents = concepts.related(found, up=True)
    below = terminology.expansion_of({"resourceType": "ValueSet", "compose": {"include": [
        {"system": "http://example.org/big", "filter": [{"property": "concept", "op": "is-a", "value": "G007"}]}]}})
    assert below.rows().count() == 1000
    elapsed = time.perf_counter() - started
    assert page[:2] == ["G060", "G060-0000"]  # G000..G059, each with its 999 items, come first
    assert [p.code for p in parents] == ["G042"]
    # A few index lookups: milliseconds each; generous for a shared, loaded test machine.
    assert elapsed < 2.0, elapsed
