"""The token endpoint for the code flow: the exchange, its context, its id_token, its refusals.

https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token and RFC 6749
section 4.1.3 (a code is single-use, bound to its client and redirect URI), RFC 7636 (PKCE),
OpenID Connect Core section 2 (id_token claims).
"""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from jwcrypto import jwk, jwt
from oauth2_provider.models import get_access_token_model, get_grant_model

from smart_auth.access import access_for_token
from smart_auth.models import TokenContext
from tests.smart_auth.conftest import (
    REDIRECT, App, exchange, form_post, get_code, make_client,
)

AccessToken = get_access_token_model()
SCOPE = "launch/patient patient/Observation.rs openid fhirUser"


def test_exchange_answers_the_smart_token_response(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    response = exchange(client, confidential_app, code, verifier)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == SCOPE
    assert 0 < body["expires_in"] <= 3600
    assert body["patient"] == patient_record and body["need_patient_banner"] is True
    assert "refresh_token" not in body  # neither offline_access nor online_access
    assert "encounter" not in body and "smart_style_url" not in body
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"


def test_the_token_carries_its_context_to_the_fhir_api(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    token = exchange(client, confidential_app, code, verifier).json()["access_token"]
    context = TokenContext.objects.get()
    assert (context.patient, context.fhir_user) == (patient_record, "Practitioner/doc-1")
    access = access_for_token(token)
    assert access.patient == patient_record and access.fhir_user == "Practitioner/doc-1"
    assert access.permits("Observation", "r") and not access.permits("Observation", "c")


def test_smart_style_url_is_sent_when_configured(client, confidential_app, practitioner_user, patient_record,
                                                 settings):
    settings.SMART_STYLE_URL = "https://ehr.example/smart-style.json"
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    assert exchange(client, confidential_app, code, verifier).json()["smart_style_url"] == settings.SMART_STYLE_URL


def test_expires_in_is_the_clients_lifetime_capped_by_the_setting(client, practitioner_user, patient_record,
                                                                  settings):
    app = make_client(access_token_lifetime=600)
    code, verifier, _ = get_code(client, app, practitioner_user, SCOPE, patient=patient_record)
    body = exchange(client, app, code, verifier).json()
    assert body["expires_in"] == 600
    settings.SMART_ACCESS_TOKEN_SECONDS = 120
    code, verifier, _ = get_code(client, app, practitioner_user, SCOPE, patient=patient_record)
    body = exchange(client, app, code, verifier).json()
    assert body["expires_in"] == 120
    stored = AccessToken.objects.order_by("-id").first()
    assert stored.expires <= timezone.now() + timedelta(seconds=121)


def _verify_id_token(client, id_token: str) -> dict:
    keys = jwk.JWKSet.from_json(client.get("/auth/jwks").content.decode())
    return json.loads(jwt.JWT(jwt=id_token, key=keys, algs=["RS256"]).claims)


def test_id_token_is_rs256_with_fhir_user_and_nonce(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record,
                                 nonce="n-0S6_WzA2Mj")
    body = exchange(client, confidential_app, code, verifier).json()
    header = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"]
    claims = _verify_id_token(client, body["id_token"])
    assert claims["iss"] == "http://testserver/auth"
    assert claims["aud"] == confidential_app.client_id
    assert claims["sub"] == str(practitioner_user.pk)
    assert claims["fhirUser"] == "http://testserver/fhir/Practitioner/doc-1"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["iat"] <= claims["exp"]


def test_no_id_token_without_openid(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, "launch/patient patient/*.rs",
                                 patient=patient_record)
    assert "id_token" not in exchange(client, confidential_app, code, verifier).json()


def test_no_fhir_user_claim_without_the_fhir_user_scope(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, "openid patient/*.rs launch/patient",
                                 patient=patient_record)
    claims = _verify_id_token(client, exchange(client, confidential_app, code, verifier).json()["id_token"])
    assert "fhirUser" not in claims and claims["sub"] == str(practitioner_user.pk)


def test_public_client_sends_client_id_only(client, public_app, patient_user):
    code, verifier, _ = get_code(client, public_app, patient_user, "launch/patient patient/*.rs")
    response = exchange(client, public_app, code, verifier)
    assert response.status_code == 200, response.content
    assert response.json()["patient"] == "pat-1"


# -- PKCE ----------------------------------------------------------------------------------

@pytest.mark.parametrize("verifier", [None, "x" * 50, "wrong-but-long-enough-" * 3])
def test_missing_or_wrong_pkce_verifier_fails(client, confidential_app, practitioner_user, patient_record, verifier):
    code, _right, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    response = exchange(client, confidential_app, code, verifier)
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_grant", "invalid_request")
    assert not AccessToken.objects.exists()


# -- the code: single use, bound, short-lived ---------------------------------------------

def test_a_code_works_once_and_its_reuse_revokes_what_it_issued(client, confidential_app, practitioner_user,
                                                                patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE + " offline_access",
                                 patient=patient_record)
    first = exchange(client, confidential_app, code, verifier).json()
    assert AccessToken.objects.count() == 1
    second = exchange(client, confidential_app, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()
    refresh = form_post(client, "/auth/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                        HTTP_AUTHORIZATION=confidential_app.basic())
    assert refresh.json()["error"] == "invalid_grant"


def test_code_reuse_also_revokes_tokens_refreshed_from_it(client, confidential_app, practitioner_user,
                                                          patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE + " offline_access",
                                 patient=patient_record)
    first = exchange(client, confidential_app, code, verifier).json()
    refreshed = form_post(client, "/auth/token", {"grant_type": "refresh_token",
                                                  "refresh_token": first["refresh_token"]},
                          HTTP_AUTHORIZATION=confidential_app.basic()).json()
    assert refreshed["access_token"]
    exchange(client, confidential_app, code, verifier)
    assert not AccessToken.objects.exists()


def test_code_is_bound_to_its_client(client, confidential_app, practitioner_user, patient_record):
    other = make_client(name="Other App")
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    response = exchange(client, other, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert exchange(client, confidential_app, code, verifier).status_code == 200


def test_code_is_bound_to_its_redirect_uri(client, practitioner_user, patient_record):
    app = make_client(redirect_uris=f"{REDIRECT} https://app.example/other")
    code, verifier, _ = get_code(client, app, practitioner_user, SCOPE, patient=patient_record)
    response = exchange(client, app, code, verifier, redirect_uri="https://app.example/other")
    assert response.status_code == 400 and response.json()["error"] in ("invalid_grant", "invalid_request")
    assert not AccessToken.objects.exists()


def test_code_expires_after_a_minute(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    grant = get_grant_model().objects.get()
    assert grant.expires <= timezone.now() + timedelta(seconds=60)
    grant.expires = timezone.now() - timedelta(seconds=1)
    grant.save()
    response = exchange(client, confidential_app, code, verifier)
    assert response.json()["error"] == "invalid_grant"


def test_disabled_client_cannot_exchange_its_code(client, confidential_app, practitioner_user, patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    confidential_app.client.is_active = False
    confidential_app.client.save()
    response = exchange(client, confidential_app, code, verifier)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# -- client authentication -----------------------------------------------------------------

def test_confidential_client_with_secret_in_the_body_is_refused(client, confidential_app, practitioner_user,
                                                                patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    response = form_post(client, "/auth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": confidential_app.client_id, "client_secret": confidential_app.secret})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert "Basic" in response.json()["error_description"]


def test_confidential_client_with_wrong_secret_is_refused(client, confidential_app, practitioner_user,
                                                          patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    impostor = App(confidential_app.client, "not-the-secret")
    response = exchange(client, impostor, code, verifier)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_confidential_client_without_authentication_is_refused(client, confidential_app, practitioner_user,
                                                               patient_record):
    code, verifier, _ = get_code(client, confidential_app, practitioner_user, SCOPE, patient=patient_record)
    response = form_post(client, "/auth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": confidential_app.client_id})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_asymmetric_client_exchanges_its_code_with_private_key_jwt(client, practitioner_user, patient_record):
    from tests.smart_auth.conftest import ASSERTION_TYPE, assertion, public_jwks, rsa_key

    key = rsa_key("app-key")
    app = make_client(jwks=public_jwks(key))
    code, verifier, _ = get_code(client, app, practitioner_user, SCOPE, patient=patient_record)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(key, app.client_id)}
    response = form_post(client, "/auth/token", data)
    assert response.status_code == 200, response.content
    bad = exchange(client, App(app.client, "anything"), code, verifier)
    assert bad.status_code == 401


def test_unknown_grant_type_is_refused(client, confidential_app):
    response = form_post(client, "/auth/token", {"grant_type": "password", "username": "x", "password": "y"},
                         HTTP_AUTHORIZATION=confidential_app.basic())
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("unsupported_grant_type", "unauthorized_client", "invalid_grant")
