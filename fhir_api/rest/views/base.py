"""What every FHIR view shares: a lean DRF ViewSet and the parsing of FHIR request headers."""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.viewsets import ViewSet

from fhir_api.rest import audit, authorization
from fhir_api.rest.responses import exception_handler
from fhir_api.store.errors import BadRequest, MethodNotAllowed, PreconditionFailed

_ETAG = re.compile(r'\s*(?:W/)?"?([^"]*)"?\s*\Z')
_COUNT = re.compile(r"[0-9]+\Z")
# Versions this server assigns: ASCII digits only (str.isdigit() also takes "²").
_VERSION = re.compile(r"[0-9]{1,18}\Z")


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
        method = (request.method or "").lower()
        if method == "options":
            return options_response(allowed_methods(self.action_map))
        action = self.action_map.get(method)
        written = error = None
        try:
            # Only the methods this route maps: the view's action names (`delete`, `patch`)
            # must never answer a method the route does not offer (DELETE on `_history`).
            if action is None:
                raise MethodNotAllowed(
                    f"{request.method} is not allowed here; allowed: {allowed_methods(self.action_map)}",
                    headers={"Allow": allowed_methods(self.action_map)},
                )
            public = action in self.public_actions
            access = None if public else authorization.authenticate(request)
            with authorization.serving(request, access), audit.acting(request, action) as written:
                response = getattr(self, method)(request, *args, **kwargs)
        except Exception as exc:
            error = exc
            response = self.handle_exception(exc)
        # Every interaction, refused ones too (a missing token, a scope that does not allow it).
        audit.record(request, action, kwargs, response, written, error)
        return response

    def handle_exception(self, exc: Exception) -> HttpResponse:
        response = exception_handler(exc, {"view": self, "request": self.request})
        if response is None:  # pragma: no cover - exception_handler answers every exception
            raise exc
        return response


def allowed_methods(*action_maps: dict[str, str]) -> str:
    """The Allow header of a route: its mapped methods, HEAD with GET, and OPTIONS."""
    methods = {m.upper() for actions in action_maps for m in actions}
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return ", ".join(sorted(methods))


def options_response(allow: str) -> HttpResponse:
    """OPTIONS on a FHIR URL: which methods it takes (RFC 9110 section 9.3.7), no body."""
    response = HttpResponse(status=200)
    response["Allow"] = allow
    response["Content-Length"] = "0"
    return response


def parse_etag(value: str | None, header: str = "If-Match") -> str | None:
    """The version id in an ETag-style header: W/"3", "3" or 3 -> "3" (None when absent)."""
    if not value:
        return None
    m = _ETAG.match(value)
    if not m or not m.group(1):
        raise BadRequest(f"{header}: '{value}' is not a version ETag such as W/\"3\"")
    return m.group(1)


def expected_version(value: str | None) -> int | None:
    """The version an If-Match asks for. A versionId is an id, not a number
    (resource.html#Meta): one this server never assigns cannot be current, so 412."""
    version = parse_etag(value)
    if version is None:
        return None
    if not _VERSION.match(version):
        raise PreconditionFailed(f"Version conflict: If-Match asked for version '{version}', which does not exist")
    return int(version)


def if_match(request: HttpRequest) -> int | None:
    return expected_version(request.META.get("HTTP_IF_MATCH"))


def query_string(request: HttpRequest) -> str:
    """The raw query string as the client sent it, UTF-8 decoded.

    WSGI hands it over as latin-1 text (PEP 3333), so raw UTF-8 (`name:exact=Zoë` typed
    without percent-encoding) must be turned back into bytes and read as UTF-8 to mean
    what the percent-encoded form means.
    """
    raw = request.META.get("QUERY_STRING", "")
    try:
        return raw.encode("iso-8859-1").decode("utf-8")
    except UnicodeEncodeError:  # already real text (a request built in process)
        return raw
    except UnicodeDecodeError:
        raise BadRequest("The query string is not UTF-8") from None


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
    if not _COUNT.match(raw):
        raise BadRequest(f"_count={raw} is not a non-negative integer")
    return settings.FHIR_MAX_COUNT if len(raw) > 9 else min(int(raw), settings.FHIR_MAX_COUNT)
