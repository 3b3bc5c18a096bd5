"""What every FHIR view shares: a lean DRF ViewSet and the parsing of FHIR request headers."""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.viewsets import ViewSet

from fhir_api.rest import authorization
from fhir_api.rest.responses import exception_handler
from fhir_api.store.errors import BadRequest

_ETAG = re.compile(r'\s*(?:W/)?"?([^"]*)"?\s*\Z')


class FhirViewSet(ViewSet):
    """A DRF ViewSet (routing by action) with a lean dispatch.

    FHIR negotiates formats itself (fhir_api.rest.formats), reads bodies itself and answers with
    ready HttpResponses, so DRF's Request wrapper, renderers and throttles would only add
    time to every request (issue #5: the read path must be leaner than DRF's default).
    Errors still go through DRF's `handle_exception`, hence our one exception handler.
    """

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    # Actions anyone may call without a token (the CapabilityStatement).
    public_actions: frozenset[str] = frozenset()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.args, self.kwargs, self.request = args, kwargs, request
        self.headers = {}
        self.format_kwarg = None
        try:
            handler = getattr(self, request.method.lower(), None) if request.method else None
            if handler is None or request.method.lower() not in self.http_method_names:
                handler = self.http_method_not_allowed
            public = getattr(self, "action_map", {}).get(request.method.lower()) in self.public_actions
            access = None if public else authorization.authenticate(request)
            with authorization.serving(request, access):
                return handler(request, *args, **kwargs)
        except Exception as exc:
            return self.handle_exception(exc)

    def handle_exception(self, exc: Exception) -> HttpResponse:
        response = exception_handler(exc, {"view": self, "request": self.request})
        if response is None:  # pragma: no cover - exception_handler answers every exception
            raise exc
        return response


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    """A version number from an ETag-style header: W/"3", "3" or 3."""
    if not value:
        return None
    m = _ETAG.match(value)
    if not m or not m.group(1).isdigit():
        raise BadRequest(f"{header}: {value!r} is not a version ETag such as W/\"3\"")
    return int(m.group(1))


def if_match(request: HttpRequest) -> int | None:
    return parse_etag(request.META.get("HTTP_IF_MATCH"))


def prefer(request: HttpRequest, key: str = "return") -> str | None:
    """A value of the Prefer header, e.g. return=minimal -> "minimal"."""
    for part in request.META.get("HTTP_PREFER", "").split(";"):
        for item in part.split(","):
            name, _, value = item.strip().partition("=")
            if name.strip().lower() == key:
                return value.strip().strip('"')
    return None


def count_param(request: HttpRequest, default: int | None = None) -> int:
    raw = request.GET.get("_count")
    if raw is None:
        return default or settings.FHIR_DEFAULT_COUNT
    if not raw.isdigit():
        raise BadRequest(f"_count={raw!r} is not a non-negative integer")
    return min(int(raw), settings.FHIR_MAX_COUNT)
