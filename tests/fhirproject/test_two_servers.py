"""Two app servers behind one database: the races of tests/fhir_api/test_concurrency.py and
the conditional creates, driven over HTTP with the racing requests split between two gunicorn
servers (as `make serve` runs them) on different ports sharing one PostgreSQL database.

https://hl7.org/fhir/R4/http.html#concurrency -- the servers keep no state of their own that
a race could depend on: row locks, advisory locks and the job table are in the database
(README "Running more than one machine").
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import psycopg
import pytest

from tests.fhir_api.test_concurrency import in_threads
from tests.fhirproject.test_database_faults import migrate
from tests.live import own_postgres, request, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ports() -> Iterator[list[int]]:
    """Two servers on one PostgreSQL database of the test's own."""
    with own_postgres() as pg:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fhir")
        migrate(pg.url("fhir"))
        with ExitStack() as stack:
            servers = [stack.enter_context(serve(pg.url("fhir"), FHIR_JOBS="embedded")) for _ in range(2)]
            yield [server.port for server in servers]


def call(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    status, answer_headers, answer = request(port, method, path, json.dumps(body).encode() if body else None,
                                             headers=headers, timeout=60)
    return status, answer_headers, json.loads(answer) if answer else None


def test_two_servers_are_up_on_different_ports(ports):
    assert ports[0] != ports[1]
    assert all(call(port, "GET", "/fhir/metadata")[0] == 200 for port in ports)


def test_read_modify_write_with_if_match_across_servers_loses_no_update(ports):
    status, _, _ = call(ports[0], "PUT", "/fhir/Patient/counter",
                        {"resourceType": "Patient", "id": "counter", "multipleBirthInteger": 0})
    assert status in (200, 201)

    def work(i: int) -> int:
        port, conflicts = ports[i % 2], 0
        for _ in range(5):
            while True:  # the client's loop: read, change, write If-Match; again on 412
                _, headers, current = call(port, "GET", "/fhir/Patient/counter")
                current["multipleBirthInteger"] += 1
                status, _, _ = call(port, "PUT", "/fhir/Patient/counter", current, {"If-Match": headers["etag"]})
                if status == 200:
                    break
                assert status == 412, status
                conflicts += 1
        return conflicts

    results = in_threads(8, work)
    assert all(isinstance(r, int) for r in results), results
    _, headers, final = call(ports[1], "GET", "/fhir/Patient/counter")
    assert final["multipleBirthInteger"] == 40
    assert headers["etag"] == 'W/"41"'
    assert sum(results) > 0  # the servers did race (a run without conflicts would prove nothing)


def test_same_if_match_on_both_servers_only_one_wins(ports):
    call(ports[0], "PUT", "/fhir/Patient/race", {"resourceType": "Patient", "id": "race"})

    def work(i: int) -> int:
        return call(ports[i % 2], "PUT", "/fhir/Patient/race", {"resourceType": "Patient", "id": "race", "gender": "other"},
                    {"If-Match": 'W/"1"'})[0]

    results = in_threads(6, work)
    assert sorted(results) == [200, 412, 412, 412, 412, 412]
    assert call(ports[1], "GET", "/fhir/Patient/race")[1]["etag"] == 'W/"2"'


def test_update_as_create_of_one_id_on_both_servers_makes_one_resource(ports):
    def work(i: int) -> int:
        return call(ports[i % 2], "PUT", "/fhir/Patient/same-id",
                    {"resourceType": "Patient", "id": "same-id", "gender": "male"})[0]

    results = in_threads(6, work)
    assert sorted(results) == [200, 200, 200, 200, 200, 201]
    assert call(ports[0], "GET", "/fhir/Patient/same-id")[1]["etag"] == 'W/"6"'


def test_conditional_creates_on_both_servers_make_one_resource(ports):
    mrn = {"system": "http://hospital.example/mrn", "value": "two-servers-1"}

    def work(i: int) -> int:
        return call(ports[i % 2], "POST", "/fhir/Patient", {"resourceType": "Patient", "identifier": [mrn]},
                    {"If-None-Exist": f"identifier={mrn['system']}|{mrn['value']}"})[0]

    results = in_threads(6, work)
    assert sorted(results) == [200, 200, 200, 200, 200, 201]
    _, _, bundle = call(ports[1], "GET", f"/fhir/Patient?identifier={mrn['system']}|{mrn['value']}&_summary=count")
    assert bundle["total"] == 1


def test_an_export_polled_on_one_server_is_throttled_on_the_other(ports):
    """The poll rate limit (429) is kept in the job table, not in a server's memory."""
    status, headers, _ = call(ports[0], "GET", "/fhir/$export", headers={"Prefer": "respond-async"})
    assert status == 202
    status_path = "/fhir" + headers["content-location"].split("/fhir", 1)[1]
    first = call(ports[0], "GET", status_path)[0]
    assert first in (200, 202)
    assert call(ports[1], "GET", status_path)[0] == 429
