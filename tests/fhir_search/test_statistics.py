"""Planner statistics after bulk writes, and sorted searches that do not depend on them.

https://hl7.org/fhir/R4/search.html#sort -- `_sort=-date` orders by each resource's own
date values. After a bulk load PostgreSQL has no statistics for the new rows until
ANALYZE runs (autovacuum may be off or behind): a large write analyses the tables it filled
(FHIR_ANALYZE_ROWS), and the sort reads each match's dates through the index that leads
with the resource, whatever the planner believes about the table.
"""
from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test import override_settings

from fhir_api.store import statistics
from fhir_search.params import Env
from fhir_search.query.parse import parse_request
from fhir_search.service import matches, page_query
from tests.fhir_search.test_query_plan import CATEGORY, _load, load_observations_without_statistics, nodes

ANALYZED = ("fhir_api_resource", "fhir_api_resourceversion", "fhir_search_stringindex")


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("planner statistics and plans are PostgreSQL's")
    statistics._written.clear()
    statistics._due.clear()
    analyze_counts.first = True


def analyze_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        if analyze_counts.first:  # start from statistics of the (empty) tables, not of earlier tests
            analyze_counts.first = False
            for table in ANALYZED:
                cursor.execute(f"ANALYZE {table}")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                       [list(ANALYZED)])
        return dict(cursor.fetchall())


def transaction_of_patients(n: int) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "name": [{"family": f"Bulk{i}"}]}} for i in range(n)]}


@pytest.mark.django_db(transaction=True)
@override_settings(FHIR_ANALYZE_ROWS=40)
def test_a_large_transaction_analyses_the_tables_it_filled(fhir):
    before = analyze_counts()
    assert fhir.post("", transaction_of_patients(60)).status_code == 200
    after = analyze_counts()
    for table in ANALYZED:
        assert after[table] == before.get(table, 0) + 1, (table, before, after)


@pytest.mark.django_db(transaction=True)
@override_settings(FHIR_ANALYZE_ROWS=1000)
def test_a_small_transaction_leaves_the_statistics_to_autovacuum(fhir):
    before = analyze_counts()
    assert fhir.post("", transaction_of_patients(20)).status_code == 200
    assert analyze_counts() == before


@pytest.mark.django_db(transaction=True)
@override_settings(FHIR_ANALYZE_ROWS=0)
def test_analyze_after_writes_can_be_turned_off(fhir):
    before = analyze_counts()
    assert fhir.post("", transaction_of_patients(60)).status_code == 200
    assert analyze_counts() == before


def sort_plan(params: list[tuple[str, str]]) -> dict:
    request = parse_request(("Observation",), params, strict=True, env=Env())
    qs = page_query(request, matches(request, Env(), every_row=True), None)[:21]
    sql, sql_params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, sql_params)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["-date", "date"])
def test_a_date_sort_after_a_bulk_load_without_analyze_reads_each_match_by_the_resource_index(sort):
    load_observations_without_statistics(1000)
    plan = sort_plan([("category", "vital-signs"), ("_sort", sort)])
    date_reads = [node for node in nodes(plan) if node.get("Relation Name") == "fhir_search_dateindex"]
    assert date_reads, json.dumps(plan, indent=1)[:4000]
    # Each match's dates come from the (resource, code, low, high) index: a few index
    # entries per match, never a scan over every date value of the code.
    assert {node.get("Index Name") for node in date_reads} == {"date_resource_code"}, json.dumps(plan, indent=1)[:4000]


@pytest.mark.django_db(transaction=True)
@override_settings(FHIR_ANALYZE_ROWS=6)
def test_a_bulk_load_ends_by_analysing_every_table_it_filled(tmp_path):
    from django.core.management import call_command

    lines = [{"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
              "effectiveDateTime": f"2024-01-0{i + 1}", "valueQuantity": {"value": 70 + i, "unit": "kg"}}
             for i in range(6)]
    (tmp_path / "obs.ndjson").write_text("\n".join(json.dumps(line) for line in lines))
    tables = ("fhir_search_dateindex", "fhir_search_quantityindex")
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(%s)", [list(tables)])
        before = dict(cursor.fetchall())
        statistics._written.clear()
        statistics._due.update({table: 10**9 for table in tables})  # no analysis during the load itself
        call_command("load", str(tmp_path), "--no-progress")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(%s)", [list(tables)])
        after = dict(cursor.fetchall())
    assert all(after[t] == before[t] + 1 for t in tables), (before, after)
