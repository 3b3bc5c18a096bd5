"""The front page, /healthz and /readyz: answered without a token, even with SMART on."""
from __future__ import annotations

import pytest
from django.db.utils import ConnectionHandler

from fhirproject import front

pytestmark = pytest.mark.django_db


@pytest.mark.auth_on
def test_the_front_page_links_the_api_its_docs_and_smart_discovery_without_a_token(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    for link in ("/fhir/metadata", "/fhir/docs", "/fhir/openapi.json", "/fhir/.well-known/smart-configuration",
                 "/admin/"):
        assert f'href="{link}"' in page
    assert "4.0.1" in page
    assert "Authentication is off" not in page


def test_the_front_page_warns_when_authentication_is_off(client):
    assert "Authentication is off" in client.get("/").content.decode()


@pytest.mark.auth_on
def test_healthz_answers_without_a_token_or_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.auth_on
def test_readyz_is_ready_on_a_migrated_reachable_database_without_a_token(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


def _handler_with(monkeypatch, database: dict) -> None:
    handler = ConnectionHandler({"default": {"TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
                                             "OPTIONS": {}, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False,
                                             "USER": "", "PASSWORD": "", "HOST": "", "PORT": "", "TEST": {},
                                             **database}})
    monkeypatch.setattr(front, "connections", handler)
    return handler


def test_readyz_answers_503_when_the_database_is_down(client, monkeypatch):
    # A real PostgreSQL connection to a port where nothing listens: refused at once.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now; nothing listens on it
    handler = _handler_with(monkeypatch, {"ENGINE": "django.db.backends.postgresql", "NAME": "fhir",
                                          "HOST": "127.0.0.1", "PORT": str(port),
                                          "OPTIONS": {"connect_timeout": 2}})
    try:
        response = client.get("/readyz")
    finally:
        handler.close_all()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "unreachable"}}


def test_readyz_answers_503_when_the_database_is_not_migrated(client, monkeypatch, tmp_path):
    handler = _handler_with(monkeypatch, {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "new.db")})
    try:
        response = client.get("/readyz")
    finally:
        handler.close_all()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"].endswith("not applied")


def test_health_endpoints_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_readyz_checks_the_job_queue_when_celery_runs_the_jobs(client, settings):
    settings.FHIR_JOBS = "celery"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["job_queue"] == "unreachable"
    settings.FHIR_JOBS = "embedded"
    assert client.get("/readyz").status_code == 200


def test_readyz_is_ready_when_the_celery_broker_answers(client, settings):
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.FHIR_JOBS = "celery"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/5"
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["job_queue"] == "ok"
