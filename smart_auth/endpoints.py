"""Absolute URLs of this authorization server and of the FHIR base it protects.

https://hl7.org/fhir/smart-app-launch/app-launch.html -- the `aud` an app sends must be the
FHIR base URL, client assertions are addressed to the token URL, and the issuer is
`<origin>/auth`. Behind a proxy FHIR_BASE_URL names the public origin; otherwise the origin
comes from the request. Validator hooks only see oauthlib's request (a copy of the WSGI
environ), so `django_request` rebuilds just enough of a Django request from it.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse


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
