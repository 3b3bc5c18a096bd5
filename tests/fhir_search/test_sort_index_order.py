"""Date sorts read in date-index order (fhir_search.query.index_order) keep the sort's meaning.

https://hl7.org/fhir/R4/search.html#sort -- a date sort orders by each resource's highest
value descending and its lowest ascending; resources without a value come last; ties by
row id. A sort on one date parameter over broad criteria walks the date index instead of
sorting every match: same order, same pages, same access narrowing, and on PostgreSQL a
plan that reads the index in order whatever the planner's statistics say.
"""
from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace

import pytest
from django.db import connection

from fhir_search.params import Env
from fhir_search.query import index_order
from fhir_search.query.parse import parse_request
from fhir_search.service import matches
from tests.fhir_search.conftest import store
from tests.fhir_search.test_access import acting_as
from tests.fhir_search.test_access import search as search_as
from tests.fhir_search.test_paging import follow, link, match_ids

pytestmark = pytest.mark.django_db
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def encounter(*periods: tuple[str | None, str | None], status: str = "finished") -> str:
    """An Encounter with one location per period (location-period is multi-valued)."""
    locations = [{"location": {"display": f"room {i}"},
                  "period": {k: v for k, v in (("start", start), ("end", end)) if v}}
                 for i, (start, end) in enumerate(periods)]
    body = {"resourceType": "Encounter", "status": status, "class": {"code": "AMB"}}
    if locations:
        body["location"] = locations
    return store(body)


def observation(when: str | None, category: str = "vital-signs", patient: str | None = None) -> str:
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "category": [{"coding": [{"system": CATEGORY, "code": category}]}]}
    if when:
        body["effectiveDateTime"] = when
    if patient:
        body["subject"] = {"reference": f"Patient/{patient}"}
    return store(body)


def request_of(resource_type: str, params: list[tuple[str, str]]):
    return parse_request((resource_type,), params, strict=True, env=Env())


def test_the_index_walk_serves_one_date_key_over_broad_criteria_only():
    walks = lambda rt, params, **kw: index_order.applies(request_of(rt, params), kw.get("compartment"),  # noqa: E731
                                                         kw.get("restricted", False))
    assert walks("Observation", [("category", "vital-signs"), ("_sort", "-date")])
    assert walks("Observation", [("code", "http://loinc.org|8867-4"), ("status", "final"), ("_sort", "date")])
    assert walks("Encounter", [("_sort", "-location-period")])
    # selective criteria drive the general query; so do compartments and access rules
    assert not walks("Observation", [("patient", "p1"), ("_sort", "-date")])
    assert not walks("Observation", [("identifier", "x"), ("_sort", "-date")])
    assert not walks("Observation", [("_sort", "-date")], compartment=("Patient", "p1"))
    assert not walks("Observation", [("_sort", "-date")], restricted=True)
    # not one date key
    assert not walks("Observation", [("_sort", "-date,status")])
    assert not walks("Observation", [("_sort", "status")])
    assert not walks("Observation", [("_sort", "-_lastUpdated")])


def test_descending_by_the_latest_end_ascending_by_the_earliest_start_without_values_last(search):
    wide = encounter(("2020-01-01", "2020-01-02"), ("2024-05-01", "2024-05-03"))  # the earliest and the latest
    middle = encounter(("2022-03-01", "2022-03-02"))
    open_ended = encounter(("2021-01-01", None))  # no end: no value to sort by descending
    nowhere = encounter()
    late_start = encounter(("2023-01-01", "2023-02-01"), ("2019-06-01", None))  # earliest start, open end
    params = {"_sort": "-location-period"}
    assert search.ids("/Encounter", params) == [wide, late_start, middle, open_ended, nowhere]
    params = {"_sort": "location-period"}
    assert search.ids("/Encounter", params) == [late_start, wide, open_ended, middle, nowhere]


def test_equal_dates_keep_creation_order_both_ways_and_a_resource_comes_once(search):
    same = [observation("2024-01-01T10:00:00Z") for _ in range(4)]
    twice = encounter(("2024-01-01", "2024-01-02"), ("2024-01-01", "2024-01-02"))  # one value, two rows
    assert search.ids("/Observation", {"category": "vital-signs", "_sort": "-date"}) == same
    assert search.ids("/Observation", {"category": "vital-signs", "_sort": "date"}) == same
    assert search.ids("/Encounter", {"_sort": "-location-period"}) == [twice]


def test_only_matches_are_walked(search):
    vital = observation("2024-02-01T00:00:00Z")
    observation("2024-03-01T00:00:00Z", category="laboratory")
    older = observation("2023-02-01T00:00:00Z")
    undated = observation(None)
    assert search.ids("/Observation", {"category": "vital-signs", "_sort": "-date"}) == [vital, older, undated]
    assert search.ids("/Observation", {"category": "vital-signs", "_sort": "date"}) == [older, vital, undated]


def all_pages(search, path: str, params: dict) -> tuple[list[list[str]], list[list[str]]]:
    """The pages read through next links, then back from the last through previous links."""
    bundle = search.bundle(path, params)
    pages = [match_ids(bundle)]
    while (url := link(bundle, "next")) is not None:
        bundle = follow(search, url)
        pages.append(match_ids(bundle))
    back = [match_ids(bundle)]
    while (url := link(bundle, "previous")) is not None:
        bundle = follow(search, url)
        back.append(match_ids(bundle))
    return pages, back


@pytest.mark.parametrize("sort", ["-location-period", "location-period"])
def test_paging_through_an_index_walk_returns_the_general_sort_once_each_way(search, monkeypatch, sort):
    rng = random.Random(13)
    days = [f"2024-0{1 + rng.randrange(3)}-{1 + rng.randrange(9):02d}" for _ in range(12)]
    for i in range(30):
        periods = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            start, end = sorted(rng.sample(days, 2))
            periods.append((None if rng.random() < 0.15 else start, None if rng.random() < 0.2 else end))
        encounter(*periods, status="finished" if i % 5 else "cancelled")
    params = {"status": "finished", "_sort": sort, "_count": "4"}

    walked, walked_back = all_pages(search, "/Encounter", params)
    monkeypatch.setattr(index_order, "applies", lambda *args: False)  # the general sort, for reference
    general, general_back = all_pages(search, "/Encounter", params)

    every = [i for page in general for i in page]
    assert len(every) == 24 and len(set(every)) == 24  # each finished Encounter once
    assert walked == general
    assert walked_back == general_back == list(reversed(general))


def test_pages_cross_from_dated_to_undated_matches_and_back(search):
    dated = [observation(f"2024-01-{d:02d}T00:00:00Z") for d in (5, 4, 3, 2, 1)]
    undated = [observation(None) for _ in range(4)]
    bundle = search.bundle("/Observation", {"category": "vital-signs", "_sort": "-date", "_count": "3"})
    pages = [match_ids(bundle)]
    while (url := link(bundle, "next")) is not None:
        bundle = follow(search, url)
        pages.append(match_ids(bundle))
    assert pages == [dated[:3], dated[3:] + undated[:1], undated[1:]]
    back = [match_ids(bundle)]
    while (url := link(bundle, "previous")) is not None:
        bundle = follow(search, url)
        back.append(match_ids(bundle))
    assert back == list(reversed(pages))
    assert "total" not in search.bundle("/Observation", {"category": "vital-signs", "_sort": "-date", "_count": "3"})
    assert search.bundle("/Observation", {"category": "vital-signs", "_sort": "-date", "_count": "3",
                                          "_total": "accurate"})["total"] == 9


def test_a_date_sorted_search_under_a_token_is_narrowed_to_what_it_may_read():
    alice = store({"resourceType": "Patient", "name": [{"family": "Alpha"}]})
    bob = store({"resourceType": "Patient", "name": [{"family": "Beta"}]})
    mine = [observation(f"2024-01-0{d}T00:00:00Z", patient=alice) for d in (1, 2)]
    observation("2024-01-09T00:00:00Z", patient=bob)
    lab = observation("2024-01-05T00:00:00Z", category="laboratory", patient=alice)
    params = [("_sort", "-date")]

    def found(bundle: dict) -> list[str]:
        return [e["fullUrl"].rsplit("/", 1)[1] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]

    with acting_as("patient/*.rs", patient=alice):
        assert found(search_as("Observation", params)) == [lab, mine[1], mine[0]]
    with acting_as("user/Observation.rs?category=laboratory"):
        assert found(search_as("Observation", params)) == [lab]
    with acting_as("user/*.rs"):  # unrestricted: the index walk, over everything
        assert len(found(search_as("Observation", params))) == 4


# -- PostgreSQL: the plan after a bulk load, before any ANALYZE -----------------------------


def walk_plan(params: list[tuple[str, str]]) -> dict:
    request = request_of("Observation", params)
    walked = matches(request, replace(Env(), fenced=True))
    qs = index_order._valued(request.sort[0], "Observation", walked, None, False, True)[:11]
    sql, sql_params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, sql_params)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


@pytest.mark.parametrize("sort,direction,index", [("-date", "Backward", "date_code_high"),
                                                  ("date", "Forward", "date_code_low")])
def test_the_category_date_sort_reads_the_date_index_in_order_without_statistics(sort, direction, index):
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    from tests.fhir_search.test_query_plan import load_observations_without_statistics

    load_observations_without_statistics(500)
    plan = walk_plan([("category", "vital-signs"), ("_sort", sort), ("_count", "10")])
    shown = json.dumps(plan, indent=1)[:6000]
    nodes = list(plan_nodes(plan))
    # The page comes straight out of the index, in order: nothing sorts, nothing hashes.
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort", "Hash", "Materialize")], shown
    walks = [n for n in nodes if n.get("Relation Name") == "fhir_search_dateindex" and n.get("Index Name") == index]
    assert len(walks) == 1 and walks[0]["Node Type"] == "Index Scan" and walks[0]["Scan Direction"] == direction, shown
    # Each walked row is tested by probes that lead with the resource.
    tokens = [n for n in nodes if n.get("Relation Name") == "fhir_search_tokenindex"]
    assert tokens and {n.get("Index Name") for n in tokens} == {"token_resource_code"}, shown
    assert all(n["Node Type"] != "Seq Scan" for n in nodes), shown
