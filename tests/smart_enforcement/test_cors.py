"""CORS on the FHIR API for browser apps (https://fetch.spec.whatwg.org/#http-cors-protocol).

A registered app's origins (of its redirect and launch URIs) and CORS_ALLOWED_ORIGINS get
preflight answers and Access-Control-Allow-Origin on every FHIR URL; OPTIONS never fails.
"""
from __future__ import annotations

import pytest

from fhir_api.rest import cors
from tests.access_tokens import bearer, make_client, mint

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]


@pytest.fixture(autouse=True)
def fresh_origins():
    cors.ORIGINS.loaded_at = float("-inf")


def preflight(client, path: str, origin: str):
    return client.options(path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")


def test_a_registered_apps_origin_gets_preflight_answers_on_every_fhir_url(client, world):
    make_client(redirect_uris="https://app.example.org/callback", launch_uri="https://launch.example.org/go")
    for path in ("/fhir/metadata", "/fhir/Patient", f"/fhir/Patient/{world['alice']}/_history/1", "/fhir/$reindex"):
        for origin in ("https://app.example.org", "https://launch.example.org"):
            response = preflight(client, path, origin)
            assert response.status_code == 200
            assert response["Access-Control-Allow-Origin"] == origin
            assert "Authorization" in response["Access-Control-Allow-Headers"]
            assert "GET" in response["Access-Control-Allow-Methods"]


def test_an_unknown_origin_gets_no_cors_headers(client, world):
    make_client(redirect_uris="https://app.example.org/callback")
    response = preflight(client, "/fhir/Patient", "https://evil.example.com")
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response
    token = mint("system/*.rs")
    response = client.get("/fhir/Patient", HTTP_ORIGIN="https://evil.example.com", **{"HTTP_AUTHORIZATION": f"Bearer {token}"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response


def test_answers_to_an_allowed_origin_expose_fhir_headers(client, world, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://portal.example.net"]
    token = mint("system/*.rs")
    response = client.get(f"/fhir/Patient/{world['alice']}", HTTP_ORIGIN="https://portal.example.net",
                          HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://portal.example.net"
    assert "ETag" in response["Access-Control-Expose-Headers"]
    refused = client.get("/fhir/Patient", HTTP_ORIGIN="https://portal.example.net")
    assert refused.status_code == 401 and refused["Access-Control-Allow-Origin"] == "https://portal.example.net"


def test_options_without_cors_answers_allow(client):
    response = client.options("/fhir/Patient")
    assert response.status_code == 200 and "GET" in response["Allow"]


def test_a_public_apps_origin_may_call_the_token_and_revocation_endpoints(client):
    make_client(redirect_uris="https://app.example.org/callback")
    for path in ("/auth/token", "/auth/revoke"):
        response = client.options(path, HTTP_ORIGIN="https://app.example.org",
                                  HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                  HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type")
        assert response.status_code == 200, path
        assert response["Access-Control-Allow-Origin"] == "https://app.example.org"
        assert "POST" in response["Access-Control-Allow-Methods"]
    refused = client.post("/auth/token", "grant_type=authorization_code&code=nope",
                          content_type="application/x-www-form-urlencoded", HTTP_ORIGIN="https://app.example.org")
    assert refused.status_code in (400, 401)  # the browser can read why the exchange failed
    assert refused["Access-Control-Allow-Origin"] == "https://app.example.org"


def test_the_authorization_page_and_unknown_origins_get_no_cors(client):
    make_client(redirect_uris="https://app.example.org/callback")
    response = client.options("/auth/token", HTTP_ORIGIN="https://evil.example.com",
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in response
    page = client.get("/auth/authorize", HTTP_ORIGIN="https://app.example.org")
    assert "Access-Control-Allow-Origin" not in page
