"""The dashboard's counts per type: from the planner's statistics on PostgreSQL, never a full count."""
from __future__ import annotations

import pytest
from django.db import connection

from admin_ui.resources import counts as counting
from fhir_api.store import repository

pytestmark = pytest.mark.django_db


def _store(resource_type: str, n: int) -> None:
    for _ in range(n):
        repository.create(resource_type, {"resourceType": resource_type, "status": "final", "code": {"text": "x"}}
                          if resource_type == "Observation" else {"resourceType": resource_type})


def test_counts_per_type_largest_first():
    _store("Patient", 3)
    _store("Observation", 5)
    found = counting.counts()
    assert [(c.resource_type, c.count) for c in found] == [("Observation", 5), ("Patient", 3)]


@pytest.mark.postgres
def test_postgres_counts_come_from_statistics_once_analysed():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    _store("Patient", 3)
    _store("Observation", 5)
    before = counting.counts()  # never analysed: bounded exact counts
    assert not any(c.estimated for c in before)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fhir_api_resource")
    after = {c.resource_type: c for c in counting.counts()}
    assert after["Patient"].estimated and after["Patient"].count == 3
    assert after["Observation"].estimated and after["Observation"].count == 5


def test_bounded_count_stops_at_the_limit(monkeypatch):
    monkeypatch.setattr(counting, "RARE_LIMIT", 2)
    _store("Patient", 3)
    if connection.vendor != "postgresql":
        pytest.skip("the bounded count is PostgreSQL's path")
    (patients,) = counting.counts()
    assert patients.count == 2 and patients.at_least
