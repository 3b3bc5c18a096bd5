"""The server behind PgBouncer in transaction-pooling mode (README "PgBouncer").

Transaction pooling hands each transaction whatever server connection is free, so nothing
may outlive a transaction on a connection: the server's statement timeouts are `SET LOCAL`,
its advisory locks are transaction locks, prepared statements are off
(DATABASE_PREPARED_STATEMENTS=false: this PgBouncer is older than 1.21), and with DATABASE_SERVER_SIDE_CURSORS=false
no cursor outlives its transaction (bulk export reads through one otherwise). The token
cache's LISTEN needs a session of its own: it goes to DATABASE_DIRECT_URL, straight to
PostgreSQL. The test runs the whole write-read-search-export cycle through PgBouncer with a
bearer token, and finds the listener on its direct connection.
"""
from __future__ import annotations

import json
import time

import psycopg
import pytest

from bench.token import mint_token
from tests.fhirproject.test_database_faults import migrate
from tests.live import ROOT, own_postgres, pgbouncer, request, serve

pytestmark = pytest.mark.slow

LISTENER = "fhir-token-listener"


def _listeners(pg) -> list[tuple]:
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        return conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = 'fhir' AND application_name = %s"
                            " AND query ILIKE 'LISTEN%%'", [LISTENER]).fetchall()


def test_the_server_works_through_transaction_pooling_with_its_listener_on_a_direct_connection(tmp_path):
    with own_postgres() as pg:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fhir")
        migrate(pg.url("fhir"))
        with pgbouncer(pg, "fhir", pool_mode="transaction") as bouncer:
            env = {
                "DATABASE_URL": bouncer.url("fhir"),
                "DATABASE_DIRECT_URL": pg.url("fhir") + f"?application_name={LISTENER}",
                "DATABASE_SERVER_SIDE_CURSORS": "false",
                # Debian 12's PgBouncer is 1.18: protocol-level prepared statements need 1.21.
                "DATABASE_PREPARED_STATEMENTS": "false",
                "FHIR_AUTH_REQUIRED": "true", "FHIR_JOBS": "embedded",
                "BULK_EXPORT_DIR": str(tmp_path), "BULK_EXPORT_POLL_SECONDS": "0",
            }
            token = mint_token({**_plain_env(), **env, "DJANGO_SETTINGS_MODULE": "fhirproject.settings"},
                               scope="system/*.cruds")
            auth = {"Authorization": f"Bearer {token}"}
            with serve(bouncer.url("fhir"), **env) as server:
                port = server.port

                def call(method: str, path: str, body: dict | None = None, **headers: str):
                    status, head, answer = request(port, method, path, json.dumps(body).encode() if body else None,
                                                   headers={**auth, **headers}, timeout=60)
                    return status, head, json.loads(answer) if answer else None

                status, _, created = call("POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Pooled"}]})
                assert status == 201, created
                patient = created["id"]
                assert call("GET", f"/fhir/Patient/{patient}")[0] == 200
                status, _, bundle = call("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [
                    {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"n{i}"},
                                  "subject": {"reference": f"Patient/{patient}"}},
                     "request": {"method": "POST", "url": "Observation"}} for i in range(30)]})
                assert status == 200, bundle
                status, _, found = call("GET", f"/fhir/Observation?subject=Patient/{patient}&_count=5")
                assert status == 200 and len(found["entry"]) == 5 and next(
                    link for link in found["link"] if link["relation"] == "next")
                assert call("GET", f"/fhir/Patient/{patient}/$everything")[0] == 200

                # A bulk export: read with .iterator(), no server-side cursor through the pooler.
                status, head, _ = call("GET", "/fhir/$export?_type=Patient,Observation", Prefer="respond-async")
                assert status == 202
                path = "/fhir" + head["content-location"].split("/fhir", 1)[1]
                deadline = time.monotonic() + 60
                while (answer := call("GET", path))[0] == 202 and time.monotonic() < deadline:
                    time.sleep(0.3)
                status, _, manifest = answer
                assert status == 200, manifest
                assert {o["type"]: o["count"] for o in manifest["output"]} == {"Patient": 1, "Observation": 30}

                # The token cache listens on its direct connection, one per server process.
                assert _listeners(pg), "no LISTEN session on DATABASE_DIRECT_URL"
                # A revoked token is refused by every process: the notification reaches the
                # listeners (a moment after the commit: PostgreSQL delivers it asynchronously).
                with psycopg.connect(pg.url("fhir"), autocommit=True) as conn:
                    conn.execute("DELETE FROM oauth2_provider_accesstoken")
                time.sleep(0.5)
                assert all(call("GET", f"/fhir/Patient/{patient}")[0] == 401 for _ in range(6))


def _plain_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "DJANGO_", "DATABASE_"))} | {
        "PYTHONPATH": str(ROOT)}
