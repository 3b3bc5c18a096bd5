"""The absolute URLs of the authorization server, for discovery and the CapabilityStatement.

https://hl7.org/fhir/smart-app-launch/conformance.html -- both documents name the same
endpoints. The FHIR API lives at `<root>/fhir` and the authorization server at
`<root>/auth` (its issuer), so every URL is derived from the FHIR base: FHIR_BASE_URL when
set (behind a proxy), otherwise the request's own origin.

This module imports no view and nothing of the REST floor, so `fhir_api.rest.capability`
can use it.
"""
from __future__ import annotations

from typing import TypedDict
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, get_script_prefix, reverse

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


def fhir_base(request: HttpRequest) -> str:
    """The FHIR base URL as clients see it (the same rule as the REST floor's links)."""
    return settings.FHIR_BASE_URL or request.build_absolute_uri("/fhir")


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
