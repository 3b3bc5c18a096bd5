"""Read by id is a prepared statement on PostgreSQL (fhir_api/store/prepared.py)."""
from __future__ import annotations

import pytest
from django.db import connection

from fhir_api.store import repository
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


READ = "%FROM fhir_api_resource WHERE resource_type = $1 AND logical_id = $2%"
CONSENT_TEST = "%SELECT 1 FROM%resource_row%"


def _prepared(pattern: str) -> int:
    """How many statements like `pattern` this connection has prepared."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [pattern])
        return cursor.fetchone()[0]


def test_a_read_by_id_answers_the_same_prepared_or_not(fhir, settings):
    stored = fhir.post("/Patient", new_patient()).json()
    answers = []
    for prepared in (True, False, True):
        settings.DATABASE_PREPARED_STATEMENTS = prepared
        response = fhir.get(f"/Patient/{stored['id']}")
        assert response.status_code == 200
        answers.append(response.json())
    assert answers[0] == answers[1] == answers[2] == stored
    settings.DATABASE_PREPARED_STATEMENTS = True
    assert fhir.get("/Patient/not-there").status_code == 404


def test_postgresql_plans_the_read_once_per_connection(fhir, on_postgres, settings):
    if not on_postgres:
        pytest.skip("prepared statements are PostgreSQL's")
    stored = fhir.post("/Patient", new_patient()).json()
    settings.DATABASE_PREPARED_STATEMENTS = True
    for _ in range(3):
        repository.read("Patient", stored["id"])
    assert _prepared(READ) == 1


def test_consent_tests_one_resource_with_a_prepared_statement(on_postgres, settings):
    """The other hot statement: consent's test of one resource on a read by id with a token."""
    if not on_postgres:
        pytest.skip("prepared statements are PostgreSQL's")
    from fhir_search import consent
    from smart_auth.access import Access

    settings.DATABASE_PREPARED_STATEMENTS = True
    access = Access(scopes=(), client_id="app")  # consents=True: the test is built, whatever is stored
    before = _prepared(CONSENT_TEST)
    for _ in range(2):
        consent.allows_one(access, "Patient", "p1", "r")
    assert _prepared(CONSENT_TEST) == before + 1


def test_no_statement_is_prepared_when_the_setting_is_off(fhir, on_postgres, settings):
    if not on_postgres:
        pytest.skip("prepared statements are PostgreSQL's")
    stored = fhir.post("/Patient", new_patient()).json()
    settings.DATABASE_PREPARED_STATEMENTS = False
    for _ in range(3):
        repository.read("Patient", stored["id"])
    assert _prepared(READ) == 0
