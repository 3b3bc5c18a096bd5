"""Absolute URLs of this authorization server and of the FHIR base it protects.

https://hl7.org/fhir/smart-app-launch/app-launch.html -- the `aud` an app sends must be the
FHIR base URL, client assertions are addressed to the token URL, and the issuer is
`<origin>/auth`. Behind a proxy FHIR_BASE_URL names the public origin; otherwise the origin
comes from the request. Validator hooks only see oauthlib's request (a copy of the WSGI
environ), so `django_request` rebuilds just enough of a Django request from it.
"""
from __future__ import annotations

from typing import TypedDict
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, get_script_prefix, reverse


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


def absolute(request, path: str) -> str:
    """`path` on this server's public origin."""
    if settings.FHIR_BASE_URL:
        parts = urlsplit(settings.FHIR_BASE_URL)
        return f"{parts.scheme}://{parts.netloc}{path}"
    return django_request(request).build_absolute_uri(path)


def fhir_base(request) -> str:
    """The FHIR base URL: the only `aud` an authorization request may name."""
    return settings.FHIR_BASE_URL or django_request(request).build_absolute_uri("/fhir")


def endpoint(request, name: str) -> str:
    """The absolute URL of one of this server's routes, e.g. endpoint(r, "token")."""
    return absolute(request, reverse(f"smart:{name}"))


def issuer(request) -> str:
    """The issuer (`iss` of id_tokens, the OpenID configuration's `issuer`)."""
    return endpoint(request, "oidc-configuration").removesuffix("/.well-known/openid-configuration")


def fhir_user_url(request, reference: str) -> str:
    """The absolute URL of a person's FHIR resource (the `fhirUser` claim)."""
    return f"{fhir_base(request)}/{reference}"


# -- every endpoint at once, for the discovery document and the CapabilityStatement ------------

# Each endpoint's URL name and the path it is mounted at. The path is the fallback while a
# route does not exist yet (the OAuth views are built beside this module), so the documents
# name the same URLs before and after they arrive.
ROUTES = {
    "issuer": ("", "auth"),
    "authorize": ("smart:authorize", "auth/authorize"),
    "token": ("smart:token", "auth/token"),
    "introspect": ("smart:introspect", "auth/introspect"),
    "revoke": ("smart:revoke", "auth/revoke"),
    "jwks": ("smart:jwks", "auth/jwks"),
    "launch": ("smart:launch", "auth/launch"),
    "manage": ("admin:smart_auth_client_changelist", "admin/smart_auth/client/"),
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


def _path(name: str, fallback: str) -> str:
    if not name:
        return fallback
    try:
        path = reverse(name)
    except NoReverseMatch:
        return fallback
    # reverse() prefixes the script name; the root derived from the base already holds it.
    prefix = get_script_prefix()
    return path[len(prefix):] if path.startswith(prefix) else path.lstrip("/")


def endpoints(base: str) -> Endpoints:
    """Every authorization-server URL, absolute, for a FHIR base URL."""
    root = server_root(base)
    return Endpoints(**{key: f"{root}/{_path(name, fallback)}" for key, (name, fallback) in ROUTES.items()})
