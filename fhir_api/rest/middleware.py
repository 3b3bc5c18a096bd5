"""Headers and error bodies of every answer under /fhir, whatever produced it.

https://hl7.org/fhir/R4/security.html#http -- answers carry patient data, so no cache may
keep them (`Cache-Control: no-store`); SecurityMiddleware adds `nosniff` and, with TLS
configured, HSTS. https://hl7.org/fhir/R4/http.html#2.21.0.4 -- errors are
OperationOutcomes: the views render theirs through `responses.exception_handler`, but
Django answers some requests before a view runs (an unknown URL, a disallowed Host, a
crash in a middleware) with an HTML page, which with DJANGO_DEBUG on shows settings, SQL
and a stack trace. Such a page never leaves: it becomes an OperationOutcome that says no
more than the status.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from fhir_api.rest.responses import outcome_response
from fhir_api.store.errors import FhirError

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("django.security.DisallowedHost")

FHIR_PREFIX = "/fhir"
# The CapabilityStatement holds no patient data; caches may keep it.
CACHEABLE = {"/fhir/metadata"}
# Swagger UI's files for /fhir/docs (views/docs.py sets how long they may be kept).
STATIC_PREFIX = "/fhir/docs/assets/"
_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
          413: "too-costly", 429: "throttled"}


def _is_fhir_body(response: HttpResponse) -> bool:
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type.endswith(("json", "xml")) or not response.get("Content-Type")


def _outcome_for(request: HttpRequest, status: int) -> HttpResponse:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    code = _CODES.get(status, "exception")
    return outcome_response(request, FhirError(reason, status=status, code=code))


class FhirAnswerMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path != FHIR_PREFIX and not path.startswith(FHIR_PREFIX + "/"):
            return self.get_response(request)
        try:
            # ALLOWED_HOSTS, checked before anything builds a URL from the Host header (on
            # the site's stack CommonMiddleware checks it; the API's stack has no such layer).
            request.get_host()
        except DisallowedHost as exc:
            security_logger.warning("%s", exc)
            response = _outcome_for(request, 400)
        else:
            response = self.get_response(request)
        if response.status_code >= 400 and not _is_fhir_body(response):
            logger.info("replaced a %s %s answer to %s by an OperationOutcome",
                        response.status_code, response.get("Content-Type"), path)
            response = _outcome_for(request, response.status_code)
        if path not in CACHEABLE and not path.startswith(STATIC_PREFIX):
            response["Cache-Control"] = "no-store"
        return response
