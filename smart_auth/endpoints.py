"""Absolute URLs of this authorization server and of the FHIR base it protects.

https://hl7.org/fhir/smart-app-launch/app-launch.html -- the `aud` an app sends must be the
FHIR base URL, client assertions are addressed to the token URL, and the issuer is
`<root>/auth`, where the root is the FHIR base without its `/fhir`. Every URL here, whether
built for a request (the OAuth views) or for a base (discovery, the CapabilityStatement), is
derived from that one root, so the documents and the tokens always agree. Behind a proxy
FHIR_BASE_URL names the public base; otherwise it comes from the request. Validator hooks only see oauthlib's request (a copy of the WSGI
environ), so `django_request` rebuilds just enough of a Django request from it.
"""
from __future__ import annotations

from typing import TypedDict
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import get_script_prefix, reverse


class _EnvironRequest(HttpRequest):
    """A Django request over a copied WSGI environ, for building absolute URLs."""

    def __init__(self, meta) -> None:
        super().__init__()
        self.META = meta

    def _get_scheme(self) -> str:
        return self.META.get("wsgi.url_scheme", "http")


def django_request(request) -> HttpRequest:
    """The Django request itself, or one rebuilt from an oauthlib request's headers."""
    if isinstance(request, HttpRequest):
        return request
    return _EnvironRequest(dict(request.headers))


def fhir_base(request) -> str:
    """The FHIR base URL: the only `aud` an authorization request may name."""
    return settings.FHIR_BASE_URL or django_request(request).build_absolute_uri("/fhir")


def endpoint(request, name: str) -> str:
    """The absolute URL of one of this server's routes, e.g. endpoint(r, "token")."""
    return _url(server_root(fhir_base(request)), f"smart:{name}")


def issuer(request) -> str:
    """The issuer (`iss` of id_tokens, the OpenID configuration's `issuer`)."""
    return _issuer(server_root(fhir_base(request)))


def fhir_user_url(request, reference: str) -> str:
    """The absolute URL of a person's FHIR resource (the `fhirUser` claim)."""
    return f"{fhir_base(request)}/{reference}"


# -- every endpoint at once, for the discovery document and the CapabilityStatement ------------

# The URL name of each endpoint the discovery document and the CapabilityStatement name.
ROUTES = {
    "authorize": "smart:authorize",
    "token": "smart:token",
    "introspect": "smart:introspect",
    "revoke": "smart:revoke",
    "jwks": "smart:jwks",
    "launch": "smart:launch",
    "manage": "admin:smart_auth_client_changelist",
}


class Endpoints(TypedDict):
    issuer: str
    authorize: str
    token: str
    introspect: str
    revoke: str
    jwks: str
    launch: str
    manage: str


def server_root(base: str) -> str:
    """The URL the /fhir, /auth and /admin routes hang from: the FHIR base without its
    trailing `/fhir`, or the base's origin when FHIR_BASE_URL is laid out differently."""
    base = base.rstrip("/")
    if base.endswith("/fhir"):
        return base[: -len("/fhir")]
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def _url(root: str, name: str) -> str:
    """The route `name` under the server root. reverse() prefixes the script name, which the
    root derived from the FHIR base already holds."""
    path = reverse(name)
    prefix = get_script_prefix()
    return f"{root}/{path[len(prefix):] if path.startswith(prefix) else path.lstrip('/')}"


def _issuer(root: str) -> str:
    return _url(root, "smart:oidc-configuration").removesuffix("/.well-known/openid-configuration")


def endpoints(base: str) -> Endpoints:
    """Every authorization-server URL, absolute, for a FHIR base URL."""
    root = server_root(base)
    return Endpoints(issuer=_issuer(root), **{key: _url(root, name) for key, name in ROUTES.items()})
