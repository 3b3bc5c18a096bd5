"""Read replicas against a real streaming replica (DATABASE_REPLICA_URLS; README "Running more
than one machine").

The test starts a PostgreSQL primary of its own, copies it with `pg_basebackup -R` into a
standby on another port, and serves with gunicorn on DATABASE_URL=primary and
DATABASE_REPLICA_URLS=standby. Pausing the standby's WAL replay (pg_wal_replay_pause) makes a
write visible on the primary only, which tells which database answered a read: a resource
written since the pause is found when the primary answers and not found when the replica does.
Two clients: the writer sends from 127.0.0.1, the other reader from 127.0.0.2 (with the
server's auth off a client is its address).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest

from tests.live import Postgres, own_postgres, request, serve, standby_of
from tests.fhirproject.test_database_faults import migrate

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
WRITER, READER = "127.0.0.1", "127.0.0.2"
PIN_SECONDS = 3


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc}): the read-your-writes pins live there")
    return REDIS_URL


@dataclass
class Pair:
    primary: Postgres
    standby: Postgres

    def sql(self, pg: Postgres, query: str, params: list | None = None) -> list[tuple]:
        with psycopg.connect(pg.url("fhir"), autocommit=True) as conn:
            return conn.execute(query, params or []).fetchall()

    def pause_replay(self) -> None:
        self.sql(self.standby, "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.sql(self.standby, "SELECT pg_wal_replay_resume()")

    def stored(self, pg: Postgres, logical_id: str) -> bool:
        return bool(self.sql(pg, "SELECT 1 FROM fhir_api_resource WHERE logical_id = %s", [logical_id]))


@contextmanager
def primary_and_standby() -> Iterator[Pair]:
    with own_postgres() as primary:
        with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fhir")
        with standby_of(primary) as standby:
            # Migrated after the copy: the standby gets the schema by streaming, as it would the data.
            migrate(primary.url("fhir"))
            pair = Pair(primary, standby)
            wait_for(lambda: _has_tables(pair), "the standby replays the migrations")
            yield pair


def _has_tables(pair: Pair) -> bool:
    try:
        return bool(pair.sql(pair.standby, "SELECT to_regclass('fhir_api_resource') IS NOT NULL")[0][0])
    except psycopg.Error:
        return False


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


def create(port: int, source: str, family: str) -> str:
    body = json.dumps({"resourceType": "Patient", "name": [{"family": family}]}).encode()
    status, _, answer = request(port, "POST", "/fhir/Patient", body, source=source)
    assert status == 201, answer
    return json.loads(answer)["id"]


def status_of(port: int, source: str, path: str, method: str = "GET", body: bytes | None = None) -> int:
    return request(port, method, path, body, source=source, timeout=30)[0]


def total(port: int, source: str, path: str, method: str = "GET", body: bytes | None = None) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else None
    status, _, answer = request(port, method, path, body, source=source, headers=headers, timeout=30)
    assert status == 200, answer
    bundle = json.loads(answer)
    return len([e for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"])


def exported_patients(port: int, source: str) -> set[str]:
    status, headers, _ = request(port, "GET", "/fhir/$export?_type=Patient", source=source,
                                 headers={"Prefer": "respond-async"})
    assert status == 202
    path = "/fhir" + headers["content-location"].split("/fhir", 1)[1]
    deadline = time.monotonic() + 60
    while (answer := request(port, "GET", path, source=source))[0] == 202 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert answer[0] == 200, answer[2]
    found = set()
    for output in json.loads(answer[2])["output"]:
        status, _, lines = request(port, "GET", "/fhir" + output["url"].split("/fhir", 1)[1], source=source)
        assert status == 200
        found |= {json.loads(line)["id"] for line in lines.decode().splitlines()}
    return found


def test_reads_go_to_the_replica_writes_to_the_primary_and_a_writer_reads_its_own_writes(redis_url, tmp_path):
    with primary_and_standby() as pair, serve(
        pair.primary.url("fhir"), DATABASE_REPLICA_URLS=pair.standby.url("fhir"), REDIS_URL=redis_url,
        FHIR_JOBS="embedded", DATABASE_REPLICA_PIN_SECONDS=str(PIN_SECONDS), DATABASE_REPLICA_RETRY_SECONDS="2",
        DATABASE_REPLICA_CATCH_UP_SECONDS="1", BULK_EXPORT_DIR=str(tmp_path), BULK_EXPORT_POLL_SECONDS="0",
    ) as server:
        port = server.port
        before = create(port, WRITER, "Before")
        wait_for(lambda: pair.stored(pair.standby, before), "the standby has the first patient")
        time.sleep(PIN_SECONDS + 0.5)  # the writer's pin from that create ends

        pair.pause_replay()
        written = create(port, WRITER, "Paused")
        # The write went to the primary: the standby cannot take one, and has not replayed it.
        assert pair.stored(pair.primary, written) and not pair.stored(pair.standby, written)

        # Read-your-writes: the writer is pinned to the primary and finds it at once...
        assert status_of(port, WRITER, f"/fhir/Patient/{written}") == 200
        assert total(port, WRITER, f"/fhir/Patient?_id={written}") == 1
        # ...while every read of another client is answered by the replica, which has not got it yet:
        # read, vread, history, search (GET and POST), $everything.
        assert status_of(port, READER, f"/fhir/Patient/{before}") == 200
        assert status_of(port, READER, f"/fhir/Patient/{written}") == 404
        assert status_of(port, READER, f"/fhir/Patient/{written}/_history/1") == 404
        assert status_of(port, READER, f"/fhir/Patient/{written}/_history") == 404
        assert status_of(port, READER, f"/fhir/Patient/{written}/$everything") == 404
        assert total(port, READER, f"/fhir/Patient?_id={written}") == 0
        assert total(port, READER, "/fhir/Patient/_search", "POST", f"_id={written}".encode()) == 0
        assert total(port, READER, f"/fhir/Patient?_id={before}") == 1
        # A search by POST reads and does not pin its client to the primary.
        assert status_of(port, READER, f"/fhir/Patient/{written}") == 404

        # The pin ends: the writer's reads go to the replica too.
        time.sleep(PIN_SECONDS + 0.5)
        assert status_of(port, WRITER, f"/fhir/Patient/{written}") == 404

        # A bulk export started while the replica lags does not miss what was written before it:
        # the replica has not replayed up to the export's start, so the export reads the primary.
        assert exported_patients(port, READER) == {before, written}

        pair.resume_replay()
        wait_for(lambda: status_of(port, READER, f"/fhir/Patient/{written}") == 200, "the replica serves the write")
        assert total(port, READER, f"/fhir/Patient?_id={written}") == 1


def test_a_replica_that_is_down_leaves_reads_to_the_primary_then_serves_again(redis_url):
    with primary_and_standby() as pair, serve(
        pair.primary.url("fhir"), DATABASE_REPLICA_URLS=pair.standby.url("fhir"), REDIS_URL=redis_url,
        FHIR_JOBS="embedded", DATABASE_REPLICA_PIN_SECONDS="1", DATABASE_REPLICA_RETRY_SECONDS="8",
        WEB_CONCURRENCY="2",
    ) as server:
        port = server.port
        known = create(port, WRITER, "Known")
        wait_for(lambda: status_of(port, READER, f"/fhir/Patient/{known}") == 200, "the replica serves the patient")

        pair.standby.stop("fast")
        answers = []
        for _ in range(20):  # every read is answered, by the primary, none with an error
            started = time.monotonic()
            answers.append((status_of(port, READER, f"/fhir/Patient/{known}"), time.monotonic() - started))
        assert [status for status, _ in answers] == [200] * 20
        # Only the first read of each server process that finds the replica gone waits for it
        # (DATABASE_REPLICA_TIMEOUT, 2 s); then the process leaves it out (DATABASE_REPLICA_RETRY_SECONDS).
        assert sum(seconds > 1 for _, seconds in answers) <= 2, answers
        assert total(port, READER, f"/fhir/Patient?_id={known}") == 1
        later = create(port, WRITER, "WhileDown")
        time.sleep(1.5)  # past the writer's pin
        assert status_of(port, READER, f"/fhir/Patient/{later}") == 200  # the primary answers

        # Back up (it catches up by streaming), paused again: after DATABASE_REPLICA_RETRY_SECONDS
        # each process tries the replica again, and it answers reads, which the pause makes visible.
        pair.standby.start()
        wait_for(lambda: pair.stored(pair.standby, later), "the restarted standby catches up")
        pair.pause_replay()
        unseen = create(port, WRITER, "AfterRestart")
        time.sleep(1.5)
        wait_for(lambda: status_of(port, READER, f"/fhir/Patient/{unseen}") == 404,
                 "reads go to the replica again", timeout=30)
        pair.resume_replay()
