"""Whole flows over real HTTP, driven by a real OAuth client library (authlib).

https://hl7.org/fhir/smart-app-launch/example-app-launch-public.html (standalone launch:
sign in with a real session and the real forms, PKCE S256, `aud`, the token response with its
context, the id_token, a refresh) and https://hl7.org/fhir/smart-app-launch/backend-services.html
(a client_credentials token with an RS384 private_key_jwt assertion signed by authlib).
The live server listens on a port of this project's test range (18300-18349).
"""
from __future__ import annotations

import json
import socket
import time
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from jwcrypto import jwk, jwt

from smart_auth.access import access_for_token
from tests.smart_auth.conftest import PASSWORD, REDIRECT

SCOPE = "launch/patient patient/Observation.rs openid fhirUser offline_access"


def _free_port() -> int:
    for port in range(18300, 18350):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18300-18349")


@pytest.fixture
def smart_server(transactional_db):
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer(f"127.0.0.1:{_free_port()}")
    yield server.url
    server.stop()


class _Forms(HTMLParser):
    """The inputs of each form of a page, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (a.get("method") or "get").lower(), "action": a.get("action"),
                               "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(a)


def _post_form(html: str) -> tuple[str, list[tuple[str, str]], list[dict]]:
    parser = _Forms()
    parser.feed(html)
    form = next(f for f in parser.forms if f["method"] == "post")
    fields = [(i["name"], i.get("value", "")) for i in form["inputs"]
              if i.get("type") == "hidden" or (i.get("type") == "checkbox" and "checked" in i)]
    return form["action"], fields, form["inputs"]


def test_standalone_launch_with_authlib_and_a_real_sign_in(smart_server, confidential_app, practitioner_user,
                                                           patient_record):
    base = smart_server
    oauth = OAuth2Session(confidential_app.client_id, confidential_app.secret, scope=SCOPE, redirect_uri=REDIRECT,
                          code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(f"{base}/auth/authorize", code_verifier=verifier,
                                                aud=f"{base}/fhir", nonce="abc123")
    browser = requests.Session()

    # Not signed in yet: the sign-in page, with its CSRF-protected form.
    response = browser.get(url, allow_redirects=False)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    login_url = urljoin(base, response.headers["Location"])
    page = browser.get(login_url)
    action, fields, _ = _post_form(page.text)
    response = browser.post(urljoin(base, action), data=fields + [("username", "dr.careful"),
                                                                   ("password", PASSWORD)],
                            headers={"Referer": login_url}, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]

    # Back at authorize: the consent screen with the patient picker.
    page = browser.get(urljoin(base, response.headers["Location"]))
    assert page.status_code == 200 and "Growth Chart" in page.text
    action, fields, inputs = _post_form(page.text)
    assert {"patient/Observation.rs", "openid"} <= {v for k, v in fields if k == "granted"}
    patient_choice = next(i["value"] for i in inputs if i.get("name") == "patient")
    response = browser.post(urljoin(base, action), data=fields + [("patient", patient_choice),
                                                                  ("decision", "allow")],
                            allow_redirects=False)
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert callback.startswith(REDIRECT) and f"state={state}" in callback

    token = oauth.fetch_token(f"{base}/auth/token", authorization_response=callback, code_verifier=verifier)
    assert token["patient"] == patient_record and token["token_type"] == "Bearer"
    assert token["scope"] == SCOPE and token["expires_in"] <= 3600 and token["refresh_token"]
    keys = jwk.JWKSet.from_json(requests.get(f"{base}/auth/jwks").text)
    claims = json.loads(jwt.JWT(jwt=token["id_token"], key=keys, algs=["RS256"]).claims)
    assert claims["iss"] == f"{base}/auth" and claims["aud"] == confidential_app.client_id
    assert claims["fhirUser"] == f"{base}/fhir/Practitioner/doc-1" and claims["nonce"] == "abc123"
    assert access_for_token(token["access_token"]).patient == patient_record

    refreshed = oauth.refresh_token(f"{base}/auth/token", refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"] and refreshed["patient"] == patient_record
    # Closing the keep-alive connections ends the server's request threads before it stops.
    browser.close()
    oauth.close()


def test_backend_service_with_authlib_private_key_jwt(smart_server, backend_service, service_key):
    base = smart_server
    token_url = f"{base}/auth/token"
    pem = service_key.export_to_pem(private_key=True, password=None).decode()
    auth = PrivateKeyJWT(token_url, alg="RS384", headers={"kid": service_key.get("kid")},
                         claims={"exp": int(time.time()) + 240})
    session = OAuth2Session(backend_service.client_id, pem, token_endpoint_auth_method=auth)
    token = session.fetch_token(token_url, grant_type="client_credentials", scope="system/Patient.rs")
    assert token["scope"] == "system/Patient.rs" and token["expires_in"] <= 300
    assert "refresh_token" not in token
    assert access_for_token(token["access_token"]).permits("Patient", "r")
    session.close()

    # Signing again with the same claims reuses authlib's jti (it keeps it in the dict it was
    # given): the server sees a replay and refuses it.
    replay = auth.sign(_Credentials(backend_service.client_id, pem), token_url)
    again = requests.post(token_url, data={
        "grant_type": "client_credentials", "scope": "system/Patient.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": replay})
    assert again.status_code == 401 and "already used" in again.json()["error_description"]


class _Credentials:
    """What authlib's PrivateKeyJWT.sign reads from a client: its id and its private key."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
