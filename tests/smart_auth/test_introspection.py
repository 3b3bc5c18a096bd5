"""Introspection (RFC 7662), revocation (RFC 7009), the JWKS and the OpenID configuration.

https://www.rfc-editor.org/rfc/rfc7662 and https://www.rfc-editor.org/rfc/rfc7009 -- both
need an authenticated client (HTTP Basic or private_key_jwt); an unknown, expired or revoked
token introspects as {"active": false}. https://openid.net/specs/openid-connect-discovery-1_0.html
"""
from __future__ import annotations

import json

import pytest
from oauth2_provider.models import get_access_token_model

from tests.smart_auth.conftest import (
    ASSERTION_TYPE, assertion, exchange, form_post, get_code, make_client,
)

AccessToken = get_access_token_model()
SCOPE = "launch/patient patient/Observation.rs openid fhirUser offline_access"


@pytest.fixture
def issued(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    return exchange(client, confidential_app, code, verifier).json()


def test_introspection_describes_an_active_token(client, confidential_app, issued, practitioner_user):
    response = form_post(client, "/auth/introspect", {"token": issued["access_token"]},
                         HTTP_AUTHORIZATION=confidential_app.basic())
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True and body["scope"] == SCOPE
    assert body["client_id"] == confidential_app.client_id and body["token_type"] == "Bearer"
    assert body["username"] == "dr.careful" and body["sub"] == str(practitioner_user.pk)
    assert body["patient"] == "pat-1"
    assert body["fhirUser"] == "http://testserver/fhir/Practitioner/doc-1"
    assert body["iat"] <= body["exp"]


def test_a_backend_service_introspects_with_private_key_jwt(client, issued, backend_service, service_key):
    response = form_post(client, "/auth/introspect", {
        "token": issued["access_token"], "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(service_key, backend_service.client_id)})
    assert response.status_code == 200 and response.json()["active"] is True


@pytest.mark.parametrize("token", ["no-such-token", ""])
def test_unknown_token_is_inactive_or_missing(client, confidential_app, issued, token):
    response = form_post(client, "/auth/introspect", {"token": token}, HTTP_AUTHORIZATION=confidential_app.basic())
    if token:
        assert response.status_code == 200 and response.json() == {"active": False}
    else:
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_expired_token_is_inactive(client, confidential_app, issued):
    from datetime import timedelta

    from django.utils import timezone

    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    response = form_post(client, "/auth/introspect", {"token": issued["access_token"]},
                         HTTP_AUTHORIZATION=confidential_app.basic())
    assert response.json() == {"active": False}


def test_token_of_a_disabled_client_is_inactive(client, confidential_app, issued):
    other = make_client(name="Resource Server")
    confidential_app.client.is_active = False
    confidential_app.client.save()
    response = form_post(client, "/auth/introspect", {"token": issued["access_token"]},
                         HTTP_AUTHORIZATION=other.basic())
    assert response.json() == {"active": False}


@pytest.mark.parametrize("how", ["none", "wrong-secret", "public", "secret-in-body"])
def test_introspection_needs_an_authenticated_confidential_client(client, confidential_app, public_app, issued, how):
    from tests.smart_auth.conftest import App

    data = {"token": issued["access_token"]}
    headers = {}
    if how == "wrong-secret":
        headers["HTTP_AUTHORIZATION"] = App(confidential_app.client, "nope").basic()
    elif how == "public":
        data["client_id"] = public_app.client_id
    elif how == "secret-in-body":
        data.update(client_id=confidential_app.client_id, client_secret=confidential_app.secret)
    response = form_post(client, "/auth/introspect", data, **headers)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert "active" not in response.json()


def test_revoking_the_access_token_revokes_its_refresh_token(client, confidential_app, issued):
    response = form_post(client, "/auth/revoke", {"token": issued["access_token"]},
                         HTTP_AUTHORIZATION=confidential_app.basic())
    assert response.status_code == 200
    introspected = form_post(client, "/auth/introspect", {"token": issued["access_token"]},
                             HTTP_AUTHORIZATION=confidential_app.basic()).json()
    assert introspected == {"active": False}
    refresh = form_post(client, "/auth/token", {"grant_type": "refresh_token",
                                                "refresh_token": issued["refresh_token"]},
                        HTTP_AUTHORIZATION=confidential_app.basic())
    assert refresh.json()["error"] == "invalid_grant"


def test_revoking_the_refresh_token_revokes_the_access_token(client, confidential_app, issued):
    response = form_post(client, "/auth/revoke", {"token": issued["refresh_token"],
                                                  "token_type_hint": "refresh_token"},
                         HTTP_AUTHORIZATION=confidential_app.basic())
    assert response.status_code == 200
    assert not AccessToken.objects.exists()


def test_a_client_cannot_revoke_another_clients_token(client, issued):
    other = make_client(name="Other")
    response = form_post(client, "/auth/revoke", {"token": issued["access_token"]},
                         HTTP_AUTHORIZATION=other.basic())
    assert response.status_code == 200  # RFC 7009 2.2: no hint whether the token exists
    assert AccessToken.objects.count() == 1


def test_revocation_needs_client_authentication(client, confidential_app, issued):
    response = form_post(client, "/auth/revoke", {"token": issued["access_token"],
                                                  "client_id": confidential_app.client_id})
    assert response.status_code == 401
    assert AccessToken.objects.count() == 1


# -- discovery -----------------------------------------------------------------------------

def test_jwks_holds_the_public_signing_key_only(client):
    response = client.get("/auth/jwks")
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    keys = response.json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" for k in keys)
    assert all(not {"d", "p", "q", "dp", "dq", "qi"} & set(k) for k in keys)


def test_openid_configuration_names_the_endpoints_and_what_works(client):
    response = client.get("/auth/.well-known/openid-configuration", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    doc = json.loads(response.content)
    assert doc["issuer"] == "http://testserver/auth"
    assert doc["authorization_endpoint"] == "http://testserver/auth/authorize"
    assert doc["token_endpoint"] == "http://testserver/auth/token"
    assert doc["introspection_endpoint"] == "http://testserver/auth/introspect"
    assert doc["revocation_endpoint"] == "http://testserver/auth/revoke"
    assert doc["jwks_uri"] == "http://testserver/auth/jwks"
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "private_key_jwt"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "client_credentials", "refresh_token"}
    assert {"openid", "fhirUser", "launch", "launch/patient", "offline_access"} <= set(doc["scopes_supported"])


def test_issuer_follows_the_public_base_url(client, settings):
    settings.FHIR_BASE_URL = "https://fhir.example.org/fhir"
    doc = client.get("/auth/.well-known/openid-configuration").json()
    assert doc["issuer"] == "https://fhir.example.org/auth"
    assert doc["token_endpoint"] == "https://fhir.example.org/auth/token"
