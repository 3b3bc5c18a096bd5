"""Concurrent writers never lose an update (https://hl7.org/fhir/R4/http.html#concurrency).

These tests need real concurrent transactions, so they run on PostgreSQL only (SQLite
serialises writers on one file lock, which proves nothing about row locking).
"""
from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from fhir_api.store import repository
from fhir_api.store.errors import PreconditionFailed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def in_threads(n: int, work) -> list:
    """Run work(0..n-1) in n threads released together; each result or exception, in order."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # collected and asserted by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_patches_lose_no_update():
    repository.update("Patient", "counter", {"resourceType": "Patient", "id": "counter", "multipleBirthInteger": 0})

    def increment(resource: dict) -> dict:
        return dict(resource, multipleBirthInteger=resource["multipleBirthInteger"] + 1)

    def work(_: int) -> None:
        for _ in range(5):
            repository.patch("Patient", "counter", increment)

    results = in_threads(8, work)
    assert [r for r in results if r is not None] == []
    final = repository.read("Patient", "counter")
    assert final.content["multipleBirthInteger"] == 40
    assert final.version_id == 41


def test_concurrent_updates_with_same_if_match_only_one_wins():
    repository.update("Patient", "race", {"resourceType": "Patient", "id": "race"})

    def work(i: int):
        return repository.update("Patient", "race", {"resourceType": "Patient", "id": "race", "gender": "other"},
                                 if_match=1)

    results = in_threads(6, work)
    winners = [r for r in results if isinstance(r, repository.Written)]
    losers = [r for r in results if isinstance(r, PreconditionFailed)]
    assert len(winners) == 1 and len(losers) == 5
    assert repository.read("Patient", "race").version_id == 2


def test_concurrent_update_as_create_of_same_id_makes_one_resource():
    def work(i: int):
        return repository.update("Patient", "same-id", {"resourceType": "Patient", "id": "same-id", "gender": "male"})

    results = in_threads(6, work)
    # The losers of the insert race retry as updates of the winner's row: all succeed.
    assert all(isinstance(r, repository.Written) for r in results), results
    assert sum(r.created for r in results) == 1
    assert repository.read("Patient", "same-id").version_id == 6
