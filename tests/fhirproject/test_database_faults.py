"""Faults of the database and of server processes: clean answers and nothing half-written.

https://hl7.org/fhir/R4/http.html#2.21.0.4 -- every error is an OperationOutcome; a
database outage is a 503 (transient), never a 500 or an HTML page, and the server comes
back by itself. https://hl7.org/fhir/R4/http.html#transaction -- a transaction is all or
nothing, even when the process running it is killed half-way.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from django.db import connection

from tests.live import ROOT, database_url, own_postgres, request, serve

pytestmark = pytest.mark.slow


def migrate(url: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "DJANGO_"))}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env={**environment, "DATABASE_URL": url}, check=True, timeout=300)


def is_outcome(headers: dict[str, str], body: bytes) -> bool:
    return headers.get("content-type", "").startswith("application/fhir+json") and \
        json.loads(body).get("resourceType") == "OperationOutcome"


def test_a_postgres_restart_under_load_answers_503_outcomes_then_recovers():
    with own_postgres() as pg:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fhir")
        migrate(pg.url("fhir"))
        with serve(pg.url("fhir"), DATABASE_POOL_TIMEOUT="2", DATABASE_CONNECT_TIMEOUT="2") as server:
            body = json.dumps({"resourceType": "Patient", "name": [{"family": "Restart"}]}).encode()
            status, headers, created = request(server.port, "POST", "/fhir/Patient", body)
            assert status == 201
            path = f"/fhir/Patient/{json.loads(created)['id']}"
            answers: list[tuple[float, int, bool]] = []
            stop = threading.Event()

            def load() -> None:  # four clients reading in a loop
                while not stop.is_set():
                    try:
                        status, headers, content = request(server.port, "GET", path, timeout=20)
                    except OSError as exc:
                        answers.append((time.monotonic(), -1, False))
                        print("connection error", exc)
                        continue
                    answers.append((time.monotonic(), status, status == 200 or is_outcome(headers, content)))

            clients = [threading.Thread(target=load, daemon=True) for _ in range(4)]
            for client in clients:
                client.start()
            time.sleep(1)
            pg.stop("fast")
            down_at = time.monotonic()
            time.sleep(6)
            pg.start()
            up_at = time.monotonic()
            recovered_at = None
            while time.monotonic() < up_at + 60:
                recent = [a for a in answers if a[0] > time.monotonic() - 1]
                if len(recent) >= 4 and all(status == 200 for _, status, _ in recent):
                    recovered_at = time.monotonic()
                    break
                time.sleep(0.5)
            stop.set()
            for client in clients:
                client.join()
        during = [a for a in answers if down_at + 0.5 < a[0] < up_at]
        assert during, "no answer while the database was down"
        assert {status for _, status, _ in during} == {503}, sorted({a[1] for a in during})
        assert all(status in (200, 503) for _, status, _ in answers), sorted({a[1] for a in answers})
        assert all(fhir for _, _, fhir in answers), "an answer was not FHIR (HTML or no OperationOutcome)"
        assert recovered_at is not None, "reads did not come back after PostgreSQL restarted"


@pytest.mark.django_db(transaction=True)
def test_a_server_killed_during_a_large_transaction_leaves_nothing():
    if connection.vendor != "postgresql":
        pytest.skip("the production server runs on PostgreSQL")
    marker = uuid.uuid4().hex
    entries = [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:kill-test", "value": marker}],
                      "name": [{"family": f"Killed{i}"}]},
         "request": {"method": "POST", "url": "Patient"}}
        for i in range(3000)
    ]
    bundle = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()
    url = database_url(connection.settings_dict)

    def stored() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM fhir_api_resource WHERE data LIKE %s", [f"%{marker}%"])
            resources = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM fhir_api_resourceversion WHERE data LIKE %s", [f"%{marker}%"])
            versions = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM fhir_search_tokenindex WHERE value = %s", [marker])
            return resources + versions + cursor.fetchone()[0]

    with serve(url) as server:
        outcome: dict[str, object] = {}

        def post() -> None:
            try:
                outcome["status"] = request(server.port, "POST", "/fhir", bundle, timeout=120)[0]
            except OSError as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=post)
        sender.start()
        # Wait until the transaction has written rows (it has a transaction id), then kill
        # every worker outright: no exception handler, no rollback by the application.
        deadline = time.monotonic() + 60
        with psycopg.connect(url, autocommit=True) as watcher:
            while time.monotonic() < deadline:
                writing = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()").fetchone()[0]
                if writing:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the transaction never started writing")
        for pid in server.workers():
            os.kill(pid, signal.SIGKILL)
        sender.join(timeout=60)
        assert "status" not in outcome, "the transaction finished before the kill"
        # PostgreSQL rolls back the dead connection's transaction.
        time.sleep(1)
        assert stored() == 0
        # The master starts new workers; the same Bundle then commits as a whole.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if request(server.port, "GET", "/fhir/metadata", timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        status, _, _ = request(server.port, "POST", "/fhir", bundle, timeout=300)
        assert status == 200
        assert stored() == 3000 * 3  # current row, version row, identifier index row each
