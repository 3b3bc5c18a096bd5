"""`Observation/$lastn` (https://hl7.org/fhir/R4/observation-operation-lastn.html).

The latest `max` Observations of each code among those the search parameters select, newest
first within each code, in one searchset Bundle.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db

LOINC = "http://loinc.org"
VITAL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
HEART, WEIGHT, GLUCOSE = "8867-4", "29463-7", "2339-0"


@pytest.fixture
def record(fhir):
    def observe(patient: str, code: str, when: str | None, category: dict = VITAL, **extra: Any) -> str:
        resource = {"resourceType": "Observation", "status": "final", "category": [category],
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                    "subject": {"reference": f"Patient/{patient}"}, **extra}
        if when:
            resource["effectiveDateTime"] = when
        response = fhir.post("/Observation", resource)
        assert response.status_code == 201, response.content
        return response.json()["id"]

    return observe


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return [e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]


def test_latest_max_per_code_newest_first(fhir, record):
    hr = [record("p1", HEART, f"2024-01-0{d}") for d in range(1, 5)]
    wt = [record("p1", WEIGHT, f"2024-02-0{d}") for d in range(1, 3)]
    record("p2", HEART, "2024-06-01")  # another patient
    found = ids(fhir.get("/Observation/$lastn", patient="p1", category="vital-signs", max="3"))
    # groups in code order (29463-7 before 8867-4), newest first in each
    assert found == [wt[1], wt[0], hr[3], hr[2], hr[1]]


def test_max_defaults_to_one(fhir, record):
    record("p1", HEART, "2024-01-01")
    newest = record("p1", HEART, "2024-03-01")
    record("p1", HEART, "2024-02-01")
    assert ids(fhir.get("/Observation/$lastn", patient="p1")) == [newest]


def test_category_code_and_date_narrow_the_groups(fhir, record):
    record("p1", HEART, "2024-01-01")
    lab = record("p1", GLUCOSE, "2024-01-02", category=LAB)
    assert ids(fhir.get("/Observation/$lastn", patient="p1", category="laboratory")) == [lab]
    early = record("p1", WEIGHT, "2023-05-01")
    record("p1", WEIGHT, "2024-05-01")
    assert ids(fhir.get("/Observation/$lastn", subject="Patient/p1", code=f"{LOINC}|{WEIGHT}",
                        date="lt2024")) == [early]


def test_observations_without_a_date_come_after_dated_ones(fhir, record):
    undated = record("p1", HEART, None)
    dated = record("p1", HEART, "2020-01-01")
    assert ids(fhir.get("/Observation/$lastn", patient="p1", max="2")) == [dated, undated]


def test_post_with_parameters(fhir, record):
    newest = record("p1", HEART, "2024-03-01")
    record("p1", HEART, "2024-01-01")
    body = {"resourceType": "Parameters", "parameter": [{"name": "patient", "valueString": "p1"},
                                                        {"name": "max", "valueInteger": 1}]}
    assert ids(fhir.post("/Observation/$lastn", body)) == [newest]


def test_bad_max_and_paging_parameters_are_400(fhir):
    for value in ("0", "-1", "x", "1.5"):
        response = fhir.get("/Observation/$lastn", max=value)
        assert response.status_code == 400, value
        assert response.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("/Observation/$lastn", _sort="date").status_code == 400


def test_lastn_is_only_for_observation(fhir):
    assert fhir.get("/Patient/$lastn").status_code == 404


def test_one_sql_query_however_many_codes(fhir, record):
    for code in (HEART, WEIGHT, GLUCOSE, "8310-5", "9279-1"):
        record("p1", code, "2024-01-01")
        record("p1", code, "2024-01-02")
    with CaptureQueriesContext(connection) as queries:
        found = ids(fhir.get("/Observation/$lastn", patient="p1", max="1"))
    assert len(found) == 5
    selects = [q["sql"] for q in queries.captured_queries
               if q["sql"].lstrip().upper().startswith("SELECT") and "token" in q["sql"].lower()]
    assert len(selects) == 1
