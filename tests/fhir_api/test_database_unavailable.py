"""A database that cannot be reached is a 503 OperationOutcome; a bad statement stays a 500.

https://hl7.org/fhir/R4/http.html#2.21.0.4 and RFC 9110 section 15.6.4 -- 503 says the
condition is temporary, with Retry-After. The real outage (PostgreSQL stopped under load)
is tested in tests/fhirproject/test_database_faults.py; this checks the classification.
"""
from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout
import pytest
from django.db import InterfaceError, OperationalError

from fhir_api.store import repository

pytestmark = pytest.mark.django_db


def raising(error: Exception, cause: Exception | None):
    def read(*args, **kwargs):
        raise error from cause
    return read




@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (OperationalError("connection failed"), psycopg.OperationalError("connection refused")),
        (OperationalError("terminating connection"), psycopg.errors.AdminShutdown("terminating connection")),
        (OperationalError("couldn't get a connection after 2.00 sec"), PoolTimeout("t")),
        (InterfaceError("connection already closed"), psycopg.InterfaceError("closed")),
    ],
)
def test_a_lost_database_answers_503_with_retry_after(fhir, monkeypatch, error, cause):
    monkeypatch.setattr(repository, "read", raising(error, cause))
    response = fhir.get("/Patient/x")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"


def test_a_failing_statement_is_still_a_500(fhir, monkeypatch):
    monkeypatch.setattr(repository, "read", raising(OperationalError("deadlock"), psycopg.errors.DeadlockDetected("x")))
    response = fhir.get("/Patient/x")
    assert response.status_code == 500
    assert response.json()["issue"][0]["code"] == "exception"
