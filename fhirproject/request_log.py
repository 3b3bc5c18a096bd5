"""Every request observed once: its X-Request-ID, one log line, and its metrics.

The request id is the client's `X-Request-ID` when it is a short token of letters, digits,
`-` and `.` (what a FHIR id may hold, so it can also be the id of an OperationOutcome:
fhir_api.rest.responses), otherwise 32 new random hex digits; it is echoed in the answer.

The log line (logger `fhir.requests`) names the method, the path with query parameter
names but not their values (a search value may be a name, a birth date or an identifier),
the status, the time, the database time, and the SMART client when a token was used.
Health probes and metric scrapes log at DEBUG: a load balancer polls them all day.
"""
from __future__ import annotations

import logging
import os
import re
from time import perf_counter

from django.db import connections
from django.http import HttpRequest, HttpResponse

from fhir_api.rest.interactions import interaction_of
from fhirproject import metrics

logger = logging.getLogger("fhir.requests")

_REQUEST_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
# Areas outside the FHIR API, by their first path segment (the metrics' "interaction" label).
_AREAS = {"auth": "auth", "admin": "admin", "static": "static", "": "front-page", "healthz": "healthz",
          "readyz": "readyz", "metrics": "metrics"}


class RequestObservationMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = perf_counter()
        for alias in connections:  # the primary, and the read replicas (DATABASE_REPLICA_URLS)
            metrics.start_database_clock(connections[alias])
        sent = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = sent if _REQUEST_ID.match(sent) else os.urandom(16).hex()  # 128 random bits
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        seconds = perf_counter() - started
        database_seconds = metrics.database_seconds()
        path = request.path
        if path == "/fhir" or path.startswith("/fhir/"):
            interaction, resource_type = interaction_of(request)
        else:
            interaction, resource_type = _AREAS.get(path[1:].split("/", 1)[0], "other"), ""
            if path == "/auth/token" and request.method == "POST":
                metrics.record_token_request(request, response.status_code)
        metrics.record(interaction, resource_type, response.status_code, seconds, database_seconds)
        level = logging.DEBUG if path in _PROBES else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(level, "%s %s %s", request.method, path, response.status_code,
                       extra={"fields": _fields(request, response, seconds, database_seconds)})
        return response


def _fields(request: HttpRequest, response: HttpResponse, seconds: float, database_seconds: float) -> dict:
    fields = {
        "request_id": request.request_id,
        "method": request.method,
        "path": _path_without_values(request),
        "status": response.status_code,
        "ms": round(seconds * 1000, 2),
        "db_ms": round(database_seconds * 1000, 2),
    }
    access = getattr(request, "access", None)
    if access is not None and access.client_id:
        fields["client_id"] = access.client_id
    return fields


def _path_without_values(request: HttpRequest) -> str:
    query = request.META.get("QUERY_STRING", "")
    if not query:
        return request.path
    names = (part.partition("=")[0] for part in query.split("&") if part)
    return request.path + "?" + "&".join(f"{name}=" for name in names)
