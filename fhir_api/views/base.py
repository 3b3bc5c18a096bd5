"""What every FHIR view shares: a lean DRF ViewSet and the parsing of FHIR request headers."""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.viewsets import ViewSet

from fhir_api.errors import BadRequest

_ETAG = re.compile(r'\s*(?:W/)?"?([^"]*)"?\s*\Z')


class FhirViewSet(ViewSet):
    """A ViewSet that skips DRF's content negotiation and throttling.

    FHIR negotiates formats itself (fhir_api.formats) and views answer with ready
    HttpResponses, so DRF's renderers never run; the hot read path stays short.
    """

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        self.format_kwarg = None


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
