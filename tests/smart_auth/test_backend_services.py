"""Backend services: client_credentials with private_key_jwt, and every fault of the JWT.

https://hl7.org/fhir/smart-app-launch/backend-services.html and
https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html -- RS384 or ES384
signatures from a registered JWKS (or JWKS URL), iss = sub = client_id, aud = token URL, exp
at most five minutes ahead, a jti used once; tokens live at most 300 s, with no refresh token.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from jwcrypto import jwk
from oauth2_provider.models import AbstractApplication, get_access_token_model

from smart_auth.access import access_for_token
from tests.smart_auth.conftest import (
    ASSERTION_TYPE, assertion, ec_key, form_post, make_client, public_jwks, rsa_key, unsigned_assertion,
)

pytestmark = pytest.mark.django_db
AccessToken = get_access_token_model()
SERVICE = AbstractApplication.GRANT_CLIENT_CREDENTIALS


def _token(http, client_assertion, scope="system/Patient.rs", **extra):
    data = {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion, **extra}
    return form_post(http, "/auth/token", data)


def _refused(response, word: str = ""):
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["error"] == "invalid_client"
    assert word in body.get("error_description", ""), body
    assert not AccessToken.objects.exists()


def test_rs384_assertion_gets_a_short_token_without_refresh(client, backend_service, service_key):
    response = _token(client, assertion(service_key, backend_service.client_id))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "system/Patient.rs"
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body and "id_token" not in body
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    access = access_for_token(body["access_token"])
    assert access.user_id is None and access.permits("Patient", "s") and not access.permits("Patient", "c")


def test_es384_assertion_is_accepted(client):
    key = ec_key("svc-ec")
    app = make_client(grant=SERVICE, jwks=public_jwks(key))
    response = _token(client, assertion(key, app.client_id, alg="ES384"))
    assert response.status_code == 200, response.content


def test_backend_expires_in_follows_the_setting(client, backend_service, service_key, settings):
    settings.SMART_BACKEND_TOKEN_SECONDS = 90
    assert _token(client, assertion(service_key, backend_service.client_id)).json()["expires_in"] == 90


def test_purpose_of_use_of_the_client_is_kept_with_the_token(client, service_key):
    from smart_auth.models import TokenContext

    app = make_client(grant=SERVICE, jwks=public_jwks(service_key), purpose_of_use="HOPERAT")
    token = _token(client, assertion(service_key, app.client_id)).json()["access_token"]
    assert TokenContext.objects.get().purpose_of_use == "HOPERAT"
    assert access_for_token(token).purpose_of_use == "HOPERAT"


# -- scopes --------------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["system/*.cruds", "system/Patient.c", "user/Patient.rs", "patient/*.rs",
                                   "launch", "", "system/Patient.xyz"])
def test_scope_beyond_registration_or_not_system_is_refused(client, backend_service, service_key, scope):
    response = _token(client, assertion(service_key, backend_service.client_id), scope=scope)
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    assert not AccessToken.objects.exists()


def test_client_without_registered_scopes_may_ask_any_system_scope(client, service_key):
    app = make_client(grant=SERVICE, jwks=public_jwks(service_key))
    response = _token(client, assertion(service_key, app.client_id), scope="system/*.cruds")
    assert response.status_code == 200 and response.json()["scope"] == "system/*.cruds"


# -- each fault of the assertion -------------------------------------------------------------

def test_wrong_aud_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, aud="http://testserver/auth/other")),
             "aud")


def test_aud_as_a_list_holding_the_token_url_is_accepted(client, backend_service, service_key):
    token = assertion(service_key, backend_service.client_id, aud=["http://testserver/auth/token"])
    assert _token(client, token).status_code == 200


def test_iss_different_from_sub_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, sub="someone-else")), "sub")


def test_iss_different_from_client_id_is_refused(client, backend_service, service_key):
    other = make_client(name="Other", grant=SERVICE, jwks=public_jwks(rsa_key("other")))
    token = assertion(service_key, backend_service.client_id)
    _refused(_token(client, token, client_id=other.client_id), "client_id")


def test_unknown_client_is_refused(client, service_key):
    _refused(_token(client, assertion(service_key, "nobody-registered-this")), "unknown")


def test_disabled_client_is_refused(client, backend_service, service_key):
    backend_service.client.is_active = False
    backend_service.client.save()
    _refused(_token(client, assertion(service_key, backend_service.client_id)))


def test_expired_assertion_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, exp=int(time.time()) - 5)), "expired")


def test_exp_more_than_five_minutes_ahead_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, exp=int(time.time()) + 400)),
             "5 minutes")


def test_missing_exp_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, exp=None)), "exp")


def test_missing_jti_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, jti=None)), "jti")


def test_replayed_jti_is_refused(client, backend_service, service_key):
    jti = str(uuid.uuid4())
    assert _token(client, assertion(service_key, backend_service.client_id, jti=jti)).status_code == 200
    AccessToken.objects.all().delete()
    _refused(_token(client, assertion(service_key, backend_service.client_id, jti=jti)), "already used")


def test_unknown_kid_is_refused(client, backend_service):
    stranger = rsa_key("not-registered")
    _refused(_token(client, assertion(stranger, backend_service.client_id)), "kid")


def test_missing_kid_is_refused(client, backend_service, service_key):
    token = assertion(service_key, backend_service.client_id, header={"kid": None})
    _refused(_token(client, token))


def test_bad_signature_is_refused(client, backend_service, service_key):
    impostor = rsa_key("svc-rsa")  # same kid, different key
    _refused(_token(client, assertion(impostor, backend_service.client_id)), "signature")


def test_tampered_claims_are_refused(client, backend_service, service_key):
    header, claims, signature = assertion(service_key, backend_service.client_id).split(".")
    import base64

    body = json.loads(base64.urlsafe_b64decode(claims + "=="))
    body["exp"] += 10
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    _refused(_token(client, f"{header}.{forged}.{signature}"), "signature")


def test_alg_none_is_refused(client, backend_service):
    _refused(_token(client, unsigned_assertion(backend_service.client_id, "svc-rsa")), "RS384")


def test_symmetric_algorithm_is_refused(client, backend_service, service_key):
    # The HMAC key is the service's public RSA key material: the classic confusion attack.
    secret = jwk.JWK(kty="oct", k=json.loads(service_key.export_public())["n"], kid="svc-rsa")
    _refused(_token(client, assertion(secret, backend_service.client_id, alg="HS256")), "RS384")


def test_rs256_is_refused(client, backend_service, service_key):
    _refused(_token(client, assertion(service_key, backend_service.client_id, alg="RS256")), "RS384")


def test_wrong_assertion_type_is_refused(client, backend_service, service_key):
    data = {"grant_type": "client_credentials", "scope": "system/Patient.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            "client_assertion": assertion(service_key, backend_service.client_id)}
    _refused(form_post(client, "/auth/token", data), "client_assertion_type")


def test_garbage_assertion_is_refused(client, backend_service):
    _refused(_token(client, "not.a.jwt"))


def test_secret_client_cannot_use_client_credentials_with_basic_when_it_registered_keys(client, service_key):
    app = make_client(grant=SERVICE, jwks=public_jwks(service_key))
    import base64

    basic = "Basic " + base64.b64encode(f"{app.client_id}:whatever".encode()).decode()
    response = form_post(client, "/auth/token", {"grant_type": "client_credentials", "scope": "system/Patient.rs"},
                         HTTP_AUTHORIZATION=basic)
    assert response.status_code == 401


def test_code_flow_client_cannot_use_client_credentials(client, service_key):
    app = make_client(jwks=public_jwks(service_key))
    response = _token(client, assertion(service_key, app.client_id))
    assert response.status_code in (400, 401) and response.json()["error"] == "unauthorized_client"


# -- JWKS URL ------------------------------------------------------------------------------

class _JwksServer:
    """A tiny JWKS host on a port of this project's test range (18300-18399)."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.hits += 1
                data = outer.document.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        for port in range(18350, 18400):
            try:
                self.server = HTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free port in 18350-18399")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server(service_key):
    server = _JwksServer(public_jwks(service_key))
    yield server
    server.close()


def test_jwks_url_is_fetched_once_and_cached(client, jwks_server, service_key, settings):
    settings.SMART_JWKS_ALLOW_PRIVATE = True
    app = make_client(grant=SERVICE, jwks_uri=jwks_server.url)
    assert _token(client, assertion(service_key, app.client_id)).status_code == 200
    assert _token(client, assertion(service_key, app.client_id)).status_code == 200
    assert jwks_server.hits == 1


def test_jwks_url_on_a_loopback_address_is_refused_by_default(client, jwks_server, service_key, settings):
    settings.SMART_JWKS_ALLOW_PRIVATE = False
    app = make_client(grant=SERVICE, jwks_uri=jwks_server.url)
    _refused(_token(client, assertion(service_key, app.client_id)))
    assert jwks_server.hits == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "[::1]", "localhost"])
def test_private_loopback_and_link_local_hosts_are_never_fetched(host, settings, monkeypatch):
    from smart_auth import keysets

    settings.SMART_JWKS_ALLOW_PRIVATE = False
    monkeypatch.setattr(keysets.urllib3.HTTPSConnectionPool, "urlopen", lambda *a, **k: pytest.fail("must not fetch"))
    with pytest.raises(keysets.KeySetError):
        keysets.fetch(f"https://{host}/jwks.json")


def test_a_public_name_resolving_to_a_private_address_is_refused(settings, monkeypatch):
    from smart_auth import keysets

    settings.SMART_JWKS_ALLOW_PRIVATE = False
    monkeypatch.setattr(keysets.socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))])
    monkeypatch.setattr(keysets.urllib3.HTTPSConnectionPool, "urlopen", lambda *a, **k: pytest.fail("must not fetch"))
    with pytest.raises(keysets.KeySetError, match="non-public"):
        keysets.fetch("https://keys.example.com/jwks.json")


def test_the_jwks_host_is_resolved_once_and_the_checked_address_is_the_one_connected(jwks_server, settings,
                                                                                   monkeypatch):
    """DNS rebinding: a second lookup could answer a private address; there is none."""
    from smart_auth import keysets

    settings.SMART_JWKS_ALLOW_PRIVATE = True  # the test server is on loopback
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        return real("127.0.0.1" if host == "keys.example.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = jwks_server.server.server_address[1]
    assert "keys" in keysets.fetch(f"http://keys.example.test:{port}/jwks.json")
    assert asked.count("keys.example.test") == 1 and jwks_server.hits == 1
    assert set(asked) <= {"keys.example.test", "127.0.0.1"}


def test_oversized_jwks_document_is_refused(jwks_server, settings):
    from smart_auth import keysets

    settings.SMART_JWKS_ALLOW_PRIVATE = True
    jwks_server.document = json.dumps({"keys": [], "padding": "x" * (keysets.MAX_BYTES + 10)})
    with pytest.raises(keysets.KeySetError, match="too large"):
        keysets.fetch(jwks_server.url)


def test_registered_jwks_with_a_private_key_is_refused(client):
    key = rsa_key("leaky")
    app = make_client(grant=SERVICE, jwks=json.dumps({"keys": [json.loads(key.export_private())]}))
    _refused(_token(client, assertion(key, app.client_id)), "private")
