"""Searches use the index tables' indexes: the PostgreSQL plans of typical US Core queries.

https://hl7.org/fhir/R4/search.html -- one SQL statement per search page; this test loads
a few thousand resources, runs ANALYZE and reads EXPLAIN of the page query. With the
planner free to choose (enable_seqscan on), none of the index tables is read by a
sequential scan, and the composite indexes that lead with the parameter code are used.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import orjson
import pytest
from django.db import connection

from fhir_api.store.models import Resource
from fhir_search.indexing import index_many
from fhir_search.params import Env
from fhir_search.query.parse import parse_request
from fhir_search.service import matches, page_query

pytestmark = pytest.mark.django_db
INDEX_TABLES = (
    "fhir_search_stringindex",
    "fhir_search_tokenindex",
    "fhir_search_referenceindex",
    "fhir_search_dateindex",
)
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FAMILIES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
]


def _load(resources: list[dict]) -> list[Resource]:
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = Resource.objects.bulk_create(
        [
            Resource(
                resource_type=r["resourceType"],
                logical_id=r["id"],
                version_id=1,
                last_updated=at,
                data=orjson.dumps(r).decode(),
            )
            for r in resources
        ]
    )
    for start in range(0, len(rows), 2000):
        batch = rows[start : start + 2000]
        index_many([(row, orjson.loads(row.data)) for row in batch])
    return rows


def load_observations_without_statistics(patients: int) -> None:
    """Ten Observations per patient (two thirds laboratory, a third vital signs), then no
    planner statistics, as after a bulk load with autovacuum off (rolled back with the test)."""
    _load([
        {"resourceType": "Observation", "id": str(uuid.uuid4()), "status": "final",
         "category": [{"coding": [{"system": CATEGORY, "code": "laboratory" if j % 3 else "vital-signs"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": f"{1000 + j % 50}-1"}]},
         "subject": {"reference": f"Patient/p{i}"},
         "effectiveDateTime": f"2023-0{1 + j % 9}-1{j % 9}T10:{i % 60:02d}:00Z"}
        for i in range(patients) for j in range(10)
    ])
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser')")
        if cursor.fetchone()[0] != "on":
            pytest.skip("removing planner statistics needs a superuser")
        cursor.execute("DELETE FROM pg_statistic WHERE starelid IN (SELECT oid FROM pg_class"
                       " WHERE relname LIKE 'fhir\\_%%' AND relkind = 'r')")


@pytest.fixture
def loaded():
    if connection.vendor != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL")
    patients = [
        {
            "resourceType": "Patient",
            "id": f"p{i}",
            "gender": "female" if i % 2 else "male",
            "birthDate": f"{1940 + i % 60}-0{1 + i % 9}-1{i % 9}",
            "name": [{"family": f"{FAMILIES[i % 20]}{i // 20}", "given": [f"Given{i}"]}],
        }
        for i in range(3000)
    ]
    observations = [
        {
            "resourceType": "Observation",
            "id": str(uuid.uuid4()),
            "status": "final",
            "category": [
                {"coding": [{"system": CATEGORY, "code": "laboratory" if j % 3 else "vital-signs"}]}
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": f"{1000 + j % 50}-1"}]},
            "subject": {"reference": f"Patient/p{i}"},
            "effectiveDateTime": f"2023-0{1 + j % 9}-1{j % 9}T10:00:00Z",
            "valueQuantity": {"value": j, "system": "http://unitsofmeasure.org", "code": "mg"},
        }
        for i in range(3000)
        for j in range(8)
    ]
    _load(patients + observations)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def plan_of(resource_type: str, params: list[tuple[str, str]]) -> dict:
    request = parse_request((resource_type,), params, strict=True, env=Env())
    qs = page_query(request, matches(request, Env()), None)[:21]
    sql, sql_params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, sql_params)
        plan = cursor.fetchone()[0]
    return json.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def scans(plan: dict) -> dict[str, set[str]]:
    """Relation name -> the kinds of scan and the indexes the plan reads it with."""
    out: dict[str, set[str]] = {}
    for node in nodes(plan):
        if "Relation Name" in node:
            out.setdefault(node["Relation Name"], set()).add(node["Node Type"])
        if node.get("Index Name"):
            out.setdefault("indexes", set()).add(node["Index Name"])
    return out


def assert_no_seq_scan_on_index_tables(plan: dict) -> dict[str, set[str]]:
    found = scans(plan)
    for table in INDEX_TABLES:
        assert "Seq Scan" not in found.get(table, set()), json.dumps(plan, indent=1)[:6000]
    return found


def test_observations_of_a_patient_in_a_category_use_the_reference_and_token_indexes(loaded):
    plan = plan_of("Observation", [("patient", "p42"), ("category", "laboratory")])
    found = assert_no_seq_scan_on_index_tables(plan)
    assert "reference_code_target" in found["indexes"], found
    assert "Seq Scan" not in found.get("fhir_api_resource", set()), found


def test_patient_family_prefix_uses_the_string_pattern_index(loaded):
    plan = plan_of("Patient", [("family", "smi")])
    found = assert_no_seq_scan_on_index_tables(plan)
    assert "string_code_value" in found["indexes"], found


@pytest.mark.parametrize(
    "params",
    [
        [("patient", "p7"), ("code", "http://loinc.org|1001-1")],
        [("patient", "p7"), ("date", "ge2023-03-01")],
        [("identifier", "urn:x|1")],
        [("birthdate", "1950"), ("gender", "female")],
        [("patient", "p7"), ("category", "vital-signs"), ("_sort", "-date")],
    ],
)
def test_other_us_core_searches_avoid_sequential_scans_of_index_tables(loaded, params):
    resource_type = "Patient" if params[0][0] in ("identifier", "birthdate") else "Observation"
    assert_no_seq_scan_on_index_tables(plan_of(resource_type, params))
