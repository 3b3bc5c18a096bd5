"""HTTP answers of the FHIR API: resources, Bundles and OperationOutcomes, with their headers.

https://hl7.org/fhir/R4/http.html -- ETag, Last-Modified, Location and `Prefer: return=`.
The stored JSON is sent as-is whenever the client asked for plain JSON of the whole resource.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
from django.conf import settings
from django.db import InterfaceError as DatabaseInterfaceError, OperationalError as DatabaseOperationalError
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from rest_framework import exceptions as drf_exceptions

from fhir_api.store import fhir_xml, jsonio, subsetting
from fhir_api.store.errors import (
    BadRequest,
    FhirError,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    ServiceUnavailable,
    TooCostly,
    Unauthorized,
    UnsupportedMediaType,
)
from fhir_api.rest.formats import DEFAULT, Format, response_format
from fhir_api.store.repository import Stored
from smart_auth import endpoints

logger = logging.getLogger(__name__)


def base_url(request: HttpRequest) -> str:
    """The FHIR base that links and Location headers are built on: the same one the
    authorization server names as the token audience (smart_auth.endpoints)."""
    return endpoints.fhir_base(request)


def _format_of(request: HttpRequest | None) -> Format:
    if request is None:
        return DEFAULT
    try:
        return response_format(request)
    except NotAcceptable:
        return DEFAULT  # the error about the format itself still has to be readable


def render(request: HttpRequest, content: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    fmt = response_format(request)
    response = HttpResponse(fmt.render(content), status=status, content_type=fmt.content_type)
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


def version_headers(stored: Stored) -> dict[str, str]:
    return {"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated.timestamp())}


def resource_response(
    request: HttpRequest,
    stored: Stored,
    *,
    status: int = 200,
    location: bool = False,
    prefer: str | None = None,
) -> HttpResponse:
    """One resource version, honouring _format/_pretty/_summary/_elements and Prefer."""
    fmt = response_format(request)
    headers = version_headers(stored)
    if location:
        headers["Location"] = f"{base_url(request)}/{stored.reference}/_history/{stored.version_id}"
    if prefer == "minimal":
        body, content_type = b"", None
    elif prefer == "OperationOutcome":
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational",
                       "diagnostics": f"{stored.reference} version {stored.version_id} stored"}],
        }
        body, content_type = fmt.render(outcome), fmt.content_type
    else:
        summary, elements = subsetting.subset_params(request.GET)
        if not fmt.xml and not fmt.pretty and not elements and summary in (None, "false"):
            body = stored.data.encode()  # the stored bytes, untouched
        else:
            body = fmt.render(subsetting.apply(stored.content, summary, elements))
        content_type = fmt.content_type
    response = HttpResponse(body, status=status, content_type=content_type)
    for key, value in headers.items():
        response[key] = value
    return response


def outcome_response(request: HttpRequest | None, error: FhirError) -> HttpResponse:
    fmt = _format_of(request)
    outcome = error.outcome()
    request_id = getattr(request, "request_id", None)
    if request_id:
        # The answer's X-Request-ID as the outcome's id (fhirproject.request_log makes it a
        # valid id), so a client holding only the body can still quote it to the operators.
        outcome = {"resourceType": outcome["resourceType"], "id": request_id,
                   **{k: v for k, v in outcome.items() if k != "resourceType"}}
    if fmt.xml:
        outcome = fhir_xml.printable(outcome)  # diagnostics may quote control characters sent to us
    response = HttpResponse(fmt.render(outcome), status=error.status, content_type=fmt.content_type)
    for key, value in error.headers.items():
        response[key] = value
    return response


def bundle_body(request: HttpRequest, bundle: dict[str, Any]) -> HttpResponse:
    """A Bundle whose entries may hold stored JSON as `orjson.Fragment`s (no re-parsing)."""
    _note_released(request, bundle)
    fmt = response_format(request)
    if fmt.xml or fmt.pretty:
        bundle = jsonio.loads(jsonio.dumps(bundle))  # fragments to plain values for XML/pretty
    return HttpResponse(fmt.render(bundle), content_type=fmt.content_type)


# "<base>/Type/id" or "<base>/Type/id/_history/n": the resource an entry holds.
_FULL_URL = re.compile(r"/([A-Z][A-Za-z]{0,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?\Z")


def _note_released(request: HttpRequest, bundle: dict[str, Any]) -> None:
    """Under break-the-glass, which resources a search, history or $everything answer holds:
    the audit record checks which of them only ETREAT let through (fhir_api.rest.audit)."""
    access = getattr(request, "access", None)
    if access is None or not access.break_glass or bundle.get("type") not in ("searchset", "history"):
        return
    released = request.__dict__.setdefault("audit_released", [])
    for entry in bundle.get("entry") or ():
        match = _FULL_URL.search(entry.get("fullUrl") or "") if "resource" in entry else None
        if match:
            released.append((match.group(1), match.group(2)))


def from_drf(exc: Exception) -> FhirError | None:
    """DRF (and Django) raise their own exceptions for routing-level failures; speak FHIR for them."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(f"The request body is larger than this server's limit of "
                               f"{settings.FHIR_MAX_BODY_BYTES} bytes (FHIR_MAX_BODY_BYTES)")
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return Unauthorized(str(exc.detail))
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Forbidden(str(exc.detail))
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return NotAcceptable(str(exc.detail))
    if isinstance(exc, drf_exceptions.ParseError):
        return BadRequest(str(exc.detail), code="structure")
    if isinstance(exc, drf_exceptions.APIException):
        return FhirError(str(exc.detail), status=exc.status_code, code="exception")
    return None


# SQLSTATE classes of a lost or refused connection: 08 connection exception, 57P01-57P03
# admin/crash shutdown and "cannot connect now" (a database starting or stopping).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")
RETRY_AFTER_SECONDS = "5"


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "cannot reach the database" rather than a bad query.

    Django wraps the driver's error; its cause tells a dropped connection, a database that
    is shutting down, or a pool with no connection to give (psycopg_pool.PoolTimeout, an
    OperationalError without SQLSTATE) from errors of the statement itself (a cancelled
    query, a deadlock: SQLSTATE 57014, 40P01), which are not outages.
    """
    if isinstance(exc, DatabaseInterfaceError):
        return True  # "connection already closed"
    if not isinstance(exc, DatabaseOperationalError):
        return False
    cause = exc.__cause__
    if isinstance(cause, psycopg.InterfaceError):
        return True
    if isinstance(cause, psycopg.OperationalError):
        state = cause.sqlstate
        return state is None or state.startswith(_UNAVAILABLE_STATES)
    return cause is not None and "database is locked" in str(cause)  # SQLite's busy timeout


def too_deep_for_sqlite(exc: BaseException) -> bool:
    """SQLite's parser refuses statements nested beyond its fixed stack: a search whose chains
    or `_has` each carry the access narrowing (scopes, consent) can reach it. PostgreSQL has
    no such limit; on SQLite the request is refused as too costly rather than failing as a bug."""
    return isinstance(exc, DatabaseOperationalError) and "parser stack overflow" in str(exc.__cause__ or exc)


def exception_handler(exc: Exception, context: dict) -> Any:
    """DRF's EXCEPTION_HANDLER: every failure leaves as an OperationOutcome."""
    error = exc if isinstance(exc, FhirError) else from_drf(exc)
    if error is None and database_unavailable(exc):
        # An outage, not a bug: one line in the log, 503 to the client, who may retry. The
        # pool replaces broken connections, so the app recovers when the database is back.
        logger.warning("database unavailable: %s", " ".join(str(exc).split())[:300])
        error = ServiceUnavailable(
            "The database is unavailable; retry later", headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    if error is None and too_deep_for_sqlite(exc):
        error = TooCostly("This search nests too deeply for the embedded SQLite database once access and consent "
                          "narrow each chain and _has; shorten it, or run the server on PostgreSQL")
    if error is None:
        # A bug, not a client error: log the traceback, answer 500 as FHIR does.
        logger.exception("unhandled error in FHIR request", exc_info=exc)
        error = FhirError("Internal server error", status=500, code="exception")
    request = context.get("request")
    return outcome_response(request, error)
