"""CORS for browser apps on the FHIR API (https://fetch.spec.whatwg.org/#http-cors-protocol).

SMART apps that run in a browser call /fhir from their own origin, and public apps also
exchange their code and refresh their tokens at /auth/token (and revoke at /auth/revoke)
with fetch, so those two endpoints answer CORS the same way. An origin is allowed when
it is the origin of a registered app's redirect or launch URI, or listed in
CORS_ALLOWED_ORIGINS. Answers to allowed origins carry `Access-Control-Allow-Origin` and expose the
FHIR headers a client reads (Location, ETag, ...). Other origins get no CORS headers, so the
browser withholds the answer.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
HEADERS = ("Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-Modified-Since, "
           "If-None-Exist, X-Request-ID")
EXPOSED = "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, X-Request-ID"
_REFRESH = 10.0  # seconds a process keeps the registered origins before reading them again


def _origin(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}".lower()
    return None


class _Origins:
    def __init__(self) -> None:
        self.loaded_at = float("-inf")
        self.registered: frozenset[str] = frozenset()

    def allowed(self, origin: str) -> bool:
        origin = origin.lower()
        if origin in (o.lower().rstrip("/") for o in settings.CORS_ALLOWED_ORIGINS):
            return True
        if time.monotonic() - self.loaded_at > _REFRESH:
            self.registered = self._load()
            self.loaded_at = time.monotonic()
        return origin in self.registered

    @staticmethod
    def _load() -> frozenset[str]:
        from oauth2_provider.models import get_application_model

        found = set()
        rows = get_application_model().objects.filter(is_active=True).values_list("redirect_uris", "launch_uri")
        for redirects, launch in rows:
            for uri in [*redirects.split(), launch]:
                origin = _origin(uri) if uri else None
                if origin:
                    found.add(origin)
        return frozenset(found)


ORIGINS = _Origins()


@cache
def _token_endpoints() -> frozenset[str]:
    from django.urls import reverse

    return frozenset({reverse("smart:token"), reverse("smart:revoke")})


def _applies(path: str) -> bool:
    """The FHIR API and the token endpoints; the discovery documents answer CORS for any
    origin themselves (smart_auth.discovery)."""
    if path.startswith("/fhir"):
        return not path.startswith("/fhir/.well-known/")
    return path in _token_endpoints()


class CorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _applies(request.path):
            return self.get_response(request)
        origin = request.META.get("HTTP_ORIGIN")
        allowed = bool(origin) and ORIGINS.allowed(origin)
        response = self.get_response(request)  # OPTIONS: the view answers with its route's Allow
        if allowed and request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META:
            response["Access-Control-Allow-Methods"] = response.get("Allow") or METHODS
            response["Access-Control-Allow-Headers"] = HEADERS
            response["Access-Control-Max-Age"] = "600"
        if allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = EXPOSED
        if origin:
            response["Vary"] = ", ".join(filter(None, [response.get("Vary"), "Origin"]))
        return response
