"""Shared helpers for the authorization server's tests: clients, people, PKCE, signed JWTs.

https://hl7.org/fhir/smart-app-launch/ -- named fixtures: a confidential and a public app,
a backend service with registered keys, a practitioner, a patient user, and a person who
"should have no access" (no FHIR identity, not staff).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import django
import pytest
from django.core.management import ManagementUtility, call_command
from django.db import connections
from jwcrypto import jwk, jwt
from oauth2_provider.models import AbstractApplication

from fhir_api.store import repository
from smart_auth import keysets
from smart_auth.models import Client
from tests.access_tokens import PASSWORD, make_user  # noqa: F401 (shared with the enforcement tests)

FHIR_BASE = "http://testserver/fhir"
TOKEN_URL = "http://testserver/auth/token"
REDIRECT = "https://app.example/callback"


@dataclass
class App:
    client: Client
    secret: str

    @property
    def client_id(self) -> str:
        return self.client.client_id

    def basic(self) -> str:
        raw = f"{self.client_id}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def make_client(*, name="Growth Chart", public=False, grant=AbstractApplication.GRANT_AUTHORIZATION_CODE,
                redirect_uris=REDIRECT, scopes="", jwks="", jwks_uri="", **extra) -> App:
    secret = "" if public or jwks or jwks_uri else secrets.token_urlsafe(32)
    client = Client.objects.create(
        name=name,
        client_type=AbstractApplication.CLIENT_PUBLIC if public else AbstractApplication.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant,
        redirect_uris=redirect_uris if grant == AbstractApplication.GRANT_AUTHORIZATION_CODE else "",
        client_secret=secret,
        allowed_scopes=scopes,
        jwks=jwks,
        jwks_uri=jwks_uri,
        **extra,
    )
    return App(client, secret)


def make_resource(resource_type: str, logical_id: str, **content) -> None:
    repository.create(resource_type, {"resourceType": resource_type, **content}, logical_id=logical_id)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


# -- keys and assertions ---------------------------------------------------------------------

def rsa_key(kid: str = "rsa-1") -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048, kid=kid)


def ec_key(kid: str = "ec-1") -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-384", kid=kid)


def public_jwks(*keys: jwk.JWK) -> str:
    return json.dumps({"keys": [json.loads(k.export_public()) for k in keys]})


def assertion(key: jwk.JWK, client_id: str, *, alg: str = "RS384", aud: str = TOKEN_URL,
              header: dict | None = None, **claims) -> str:
    """A signed client assertion; keyword claims override (None removes a claim)."""
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "jti": str(uuid.uuid4())}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    head = {"alg": alg, "kid": key.get("kid"), "typ": "JWT"}
    head.update(header or {})
    token = jwt.JWT(header=head, claims=body)
    token.make_signed_token(key)
    return token.serialize()


def unsigned_assertion(client_id: str, kid: str, **header) -> str:
    """An `alg: none` JWT: header and claims with an empty signature."""
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 240, "jti": str(uuid.uuid4())}
    return f"{b64({'alg': 'none', 'kid': kid, **header})}.{b64(claims)}."


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# -- the authorize screen, driven with Django's test client ----------------------------------

def authorize_params(app: App, challenge: str, scope: str, **extra) -> dict:
    params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT, "scope": scope,
              "state": "st-" + secrets.token_hex(4), "aud": FHIR_BASE, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def consent(http, params: dict, *, granted: list[str] | None = None, decision="allow", **fields):
    """POST the consent form as a person would after seeing the screen."""
    data = {k: v for k, v in params.items()}
    data["decision"] = decision
    data["granted"] = granted if granted is not None else params["scope"].split()
    data.update(fields)
    return http.post("/auth/authorize", data)


def redirect_query(response) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.content[:500])
    location = response["Location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(http, app: App, user, scope: str, **extra) -> tuple[str, str, dict]:
    """(code, verifier, params) after the person allows everything asked."""
    http.force_login(user)
    verifier, challenge = pkce_pair()
    fields = {k: extra.pop(k) for k in list(extra) if k in ("patient",)}
    params = authorize_params(app, challenge, scope, **extra)
    query = redirect_query(consent(http, params, **fields))
    assert query.get("state") == params["state"]
    return query["code"], verifier, params


def exchange(http, app: App, code: str, verifier: str, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    data.update(extra)
    data = {k: v for k, v in data.items() if v is not None}
    headers = {}
    if app.secret:
        headers["HTTP_AUTHORIZATION"] = app.basic()
    else:
        data.setdefault("client_id", app.client_id)
    return http.post("/auth/token", urlencode(data), content_type="application/x-www-form-urlencoded", **headers)


def form_post(http, path: str, data: dict, **headers):
    return http.post(path, urlencode(data, doseq=True), content_type="application/x-www-form-urlencoded", **headers)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    """Client secrets and passwords are hashed like in production, just with a fast hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_jwks_cache():
    keysets.clear_cache()
    yield
    keysets.clear_cache()


@pytest.fixture
def confidential_app(db) -> App:
    return make_client()


@pytest.fixture
def public_app(db) -> App:
    return make_client(name="Patient Portal", public=True)


@pytest.fixture
def patient_record(db) -> str:
    make_resource("Patient", "pat-1", name=[{"family": "Chalmers", "given": ["Peter"]}], birthDate="1974-12-25")
    return "pat-1"


@pytest.fixture
def practitioner_user(db):
    make_resource("Practitioner", "doc-1", name=[{"family": "Careful", "given": ["Adam"]}])
    return make_user("dr.careful", "Practitioner/doc-1")


@pytest.fixture
def patient_user(patient_record):
    return make_user("peter", f"Patient/{patient_record}")


@pytest.fixture
def nobody_user(db):
    """Someone who should have no access: no FHIR identity, not staff."""
    return make_user("nobody")


@pytest.fixture
def service_key() -> jwk.JWK:
    return rsa_key("svc-rsa")


@pytest.fixture
def backend_service(db, service_key) -> App:
    return make_client(name="Nightly Export", grant=AbstractApplication.GRANT_CLIENT_CREDENTIALS,
                       jwks=public_jwks(service_key, ec_key("svc-ec-unused")), scopes="system/*.rs")


# -- the command line (smart_client, smart_user, smart_launch) -----------------------------


def run(*args: str) -> Any:
    """Run a management command in-process (call_command) and parse its JSON output."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `manage.py <args>` through Django's command-line entry point, in-process, so the
    exit code and stderr are exactly what a script would see (and the test database is used)."""
    # Django is set up already; setting it up again would point logging at this test's
    # captured stderr, which is closed once the test ends.
    monkeypatch.setattr(django, "setup", lambda *args, **kwargs: None)
    # A command run from the command line closes the database connections when it ends;
    # here that connection holds the test's transaction (PostgreSQL), so it stays open.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            ManagementUtility(["manage.py", *args]).execute()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def key_pair(kty: str = "RSA", kid: str = "key-1") -> jwk.JWK:
    if kty == "RSA":
        return jwk.JWK.generate(kty="RSA", size=2048, kid=kid, alg="RS384", use="sig")
    return jwk.JWK.generate(kty="EC", crv="P-384", kid=kid, alg="ES384", use="sig")


def key_set(*keys: jwk.JWK, private: bool = False) -> dict[str, Any]:
    return {"keys": [json.loads(k.export(private_key=private)) for k in keys]}


@pytest.fixture
def write_file(tmp_path: Path):
    def write(name: str, content: Any) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


@pytest.fixture
def public_jwks_file(write_file) -> str:
    return write_file("jwks.json", key_set(key_pair("RSA", "rsa-1"), key_pair("EC", "ec-1")))
