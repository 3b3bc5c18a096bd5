"""Security headers on FHIR answers, and no internals in any error, even with DEBUG on.

https://hl7.org/fhir/R4/security.html#http -- answers carry patient data: no cache may
keep them (`Cache-Control: no-store`), browsers must not sniff their type (`nosniff`), and
with TLS configured clients are told to stay on HTTPS (HSTS).
https://hl7.org/fhir/R4/http.html#2.21.0.4 -- every error is an OperationOutcome, and it
says nothing of the server's SQL, settings or code.
"""
from __future__ import annotations

import pytest
from django.db import ProgrammingError
from django.test import Client, override_settings

from fhir_api.store import repository

pytestmark = pytest.mark.django_db
LEAKS = ("SELECT", "Traceback", "fhir_api_resource", "File \"", "settings", "<html", "DEBUG")


def assert_clean_outcome(response, status: int) -> None:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.content.decode()
    assert '"resourceType":"OperationOutcome"' in body
    for leak in LEAKS:
        assert leak not in body, (leak, body[:500])


def test_a_read_is_not_stored_by_caches_and_not_sniffed(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}")
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/Patient", "/Patient/{id}/_history", "/_history", "/Patient/{id}/$everything"])
def test_searches_history_and_operations_are_not_stored_by_caches(fhir, patient, path):
    response = fhir.get(path.format(id=patient["id"]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


def test_writes_and_errors_are_not_stored_by_caches(fhir, patient):
    assert fhir.put(f"/Patient/{patient['id']}", {**patient, "gender": "other"})["Cache-Control"] == "no-store"
    assert fhir.get("/Patient/does-not-exist")["Cache-Control"] == "no-store"


def test_the_capability_statement_may_be_cached(fhir):
    response = fhir.get("/metadata")
    assert "no-store" not in response.get("Cache-Control", "")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_no_hsts_on_plain_http(fhir):
    assert "Strict-Transport-Security" not in fhir.get("/metadata")


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_hsts_when_tls_is_configured(fhir):
    response = fhir.get("/metadata", headers={"X-Forwarded-Proto": "https"})
    assert response["Strict-Transport-Security"] == "max-age=31536000"


@override_settings(SECURE_SSL_REDIRECT=True)
def test_plain_http_is_redirected_to_https_when_configured(fhir):
    response = fhir.get("/metadata")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


@override_settings(DEBUG=True)
def test_a_database_error_in_debug_mode_shows_no_sql_or_trace(monkeypatch):
    def broken(*args, **kwargs):
        raise ProgrammingError('syntax error at or near "SELECT" in SELECT * FROM fhir_api_resource')

    monkeypatch.setattr(repository, "read", broken)
    response = Client(raise_request_exception=False).get("/fhir/Patient/x")
    assert_clean_outcome(response, 500)


@override_settings(DEBUG=True)
def test_an_unknown_url_in_debug_mode_is_an_outcome_not_the_url_list():
    response = Client(raise_request_exception=False).get("/fhir/Patient/a/b/c/d/e/f")
    assert_clean_outcome(response, 404)


@override_settings(DEBUG=True)
def test_a_disallowed_host_in_debug_mode_is_an_outcome():
    response = Client(raise_request_exception=False).get("/fhir/Patient", HTTP_HOST="evil.example")
    assert_clean_outcome(response, 400)
    assert response["Cache-Control"] == "no-store"


@override_settings(DEBUG=True)
def test_a_crash_before_the_view_in_debug_mode_is_an_outcome(monkeypatch):
    from fhir_api.rest.cors import CorsMiddleware  # a layer of the API's middleware stack

    def crash(self, request):
        raise RuntimeError("secret internals: SELECT password FROM auth_user")

    monkeypatch.setattr(CorsMiddleware, "__call__", crash)
    response = Client(raise_request_exception=False).get("/fhir/Patient")
    assert_clean_outcome(response, 500)
    assert "secret" not in response.content.decode()
