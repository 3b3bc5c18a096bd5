"""Shared fixtures: a FHIR client over Django's test client, and named resources.

Tests run against the real database: SQLite by default, PostgreSQL when DATABASE_URL
points at one (pytest-django creates and drops a test database).
"""
from __future__ import annotations

import json
from typing import Any

import django.test.client
import pytest
from django.db import connection

from fhirproject.handlers import ApiMiddlewareMixin, is_api_path

FHIR_JSON = "application/fhir+json"


# Django's own: every path through settings.MIDDLEWARE (tests/fhirproject/test_handlers.py
# compares the two stacks' answers).
FullStackClientHandler = django.test.client.ClientHandler


class _ApiClientHandler(ApiMiddlewareMixin, FullStackClientHandler):
    pass


class _SplitClientHandler(FullStackClientHandler):
    """Django's test client handler, serving /fhir through the API's middleware stack as
    fhirproject.wsgi does (fhirproject/handlers.py), so the tests see what gunicorn serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = _ApiClientHandler(*args, **kwargs)

    def __call__(self, environ: dict[str, Any]):
        if is_api_path(environ.get("PATH_INFO", "")):
            return self.api(environ)
        return super().__call__(environ)


# Every test client (pytest-django's `client`, `Client()` in a test) is made with this handler.
django.test.client.ClientHandler = _SplitClientHandler


class FhirClient:
    """Talks to /fhir like a FHIR client would: JSON bodies, FHIR content types."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any):
        return self.client.get("/fhir" + path, params, **self._headers(headers or {}))

    def send(self, method: str, path: str, body: Any = None, content_type: str = FHIR_JSON,
             headers: dict[str, str] | None = None):
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        call = getattr(self.client, method.lower())
        return call("/fhir" + path, data=data if data is not None else "", content_type=content_type,
                    **self._headers(headers or {}))

    def post(self, path: str, body: Any, **kw: Any):
        return self.send("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any):
        return self.send("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, **kw: Any):
        return self.send("PATCH", path, body, **kw)

    def delete(self, path: str, headers: dict[str, str] | None = None):
        return self.client.delete("/fhir" + path, **self._headers(headers or {}))


@pytest.fixture(scope="session", autouse=True)
def _flush_takes_the_audit_retention_pass():
    """Transactional tests end with Django's `flush`. On SQLite its DELETEs meet the audit
    trail's append-only triggers (PostgreSQL's TRUNCATE fires no row trigger), so the test
    database's flush takes the pass the retention command takes (fhir_api.store.audit)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        yield
        return
    from django.db.backends.sqlite3.base import DatabaseWrapper

    from fhir_api.store.audit import RETENTION_TABLE

    DatabaseOperations = DatabaseWrapper.ops_class
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, **kwargs):
        statements = original(self, style, tables, **kwargs)
        if not statements:
            return statements
        return [f"INSERT INTO {RETENTION_TABLE} (pass) VALUES (1)", *statements, f"DELETE FROM {RETENTION_TABLE}"]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original


@pytest.fixture(autouse=True)
def _auth_off_unless_asked(request, settings):
    """FHIR semantics are tested with authentication off (as `make run` serves); tests of
    SMART enforcement turn it on with the `auth_on` marker or by setting it themselves."""
    settings.FHIR_AUTH_REQUIRED = request.node.get_closest_marker("auth_on") is not None
    # AuditEvents written at once, in the test's transaction (no background thread to wait for).
    settings.FHIR_AUDIT_FLUSH_MS = 0
    # Remembered token lookups are forgotten on the database's NOTIFY, which is sent at
    # commit; tests run in a transaction that never commits, so they look tokens up every
    # time. tests/smart_enforcement/test_token_cache.py tests the cache with real commits.
    settings.SMART_TOKEN_CACHE = False


@pytest.fixture(autouse=True)
def _definitions_reloaded_after_each_test():
    """Each test's writes roll back, which the per-process caches of stored SearchParameters,
    value sets and profiles cannot see: make them re-read the store on their next use."""
    yield
    from fhir_search import definitions_lookup, stored_params, terminology

    stored_params.touch()
    terminology.touch()
    definitions_lookup.touch()


@pytest.fixture(autouse=True)
def _jobs_wait_in_the_table(settings, tmp_path):
    """Jobs wait in the job table (FHIR_JOBS=database) and a test runs them with `finish_job`,
    in its own transaction; export files go to a folder of the test's own."""
    settings.FHIR_JOBS = "database"
    settings.BULK_EXPORT_DIR = str(tmp_path / "bulk-export")
    settings.STORAGES = {**settings.STORAGES, "bulk_export": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": settings.BULK_EXPORT_DIR}}}
    settings.BULK_EXPORT_POLL_SECONDS = 0


def finish_job(fhir: FhirClient, kicked, headers: dict[str, str] | None = None):
    """Run the job a 202 answer started (as a worker would) and GET its status URL."""
    from fhir_api.store import job_runner

    assert kicked.status_code == 202, kicked.content
    job_runner.run_pending()
    return fhir.get(status_path(kicked), headers=headers)


def status_path(kicked) -> str:
    return kicked["Content-Location"].split("/fhir", 1)[1]


@pytest.fixture
def fhir(client) -> FhirClient:
    return FhirClient(client)


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def new_patient(**extra: Any) -> dict[str, Any]:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "12345"}],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
    }
    body.update(extra)
    return body


@pytest.fixture
def patient(fhir) -> dict[str, Any]:
    """A stored Patient, as the server returned it."""
    response = fhir.post("/Patient", new_patient())
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def practitioner(fhir) -> dict[str, Any]:
    response = fhir.post("/Practitioner", {
        "resourceType": "Practitioner",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9941339108"}],
        "name": [{"family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
    })
    assert response.status_code == 201, response.content
    return response.json()


def pytest_terminal_summary(terminalreporter) -> None:
    """Say plainly, even in a quiet run, when the console's browser test could not run."""
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "no browser" in reason:
            terminalreporter.write_line(f"SKIPPED {report.nodeid}: {reason.removeprefix('Skipped: ')}", yellow=True)
