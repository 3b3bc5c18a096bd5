"""One error hierarchy for the FHIR API, always answered as an OperationOutcome.

https://hl7.org/fhir/R4/operationoutcome.html and https://hl7.org/fhir/R4/http.html#2.21.0.4:
an error is raised once, where it is found, and rendered in one place (`exception_handler`).
"""
from __future__ import annotations

import logging
from typing import Any, TypedDict

from rest_framework import exceptions as drf_exceptions

logger = logging.getLogger(__name__)


class Issue(TypedDict, total=False):
    severity: str
    code: str
    diagnostics: str
    expression: list[str]


class FhirError(Exception):
    status = 400
    code = "invalid"

    def __init__(
        self,
        diagnostics: str,
        *,
        code: str | None = None,
        status: int | None = None,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if code:
            self.code = code
        if status:
            self.status = status
        self.issues = issues
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        issues = self.issues or [Issue(severity="error", code=self.code, diagnostics=self.diagnostics)]
        return {"resourceType": "OperationOutcome", "issue": list(issues)}


class BadRequest(FhirError):
    status, code = 400, "invalid"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class Gone(FhirError):
    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    """The content is well-formed but breaks the rules of its definition."""

    status, code = 422, "processing"


class NotImplementedYet(FhirError):
    status, code = 501, "not-supported"


def from_drf(exc: Exception) -> FhirError | None:
    """DRF raises its own exceptions for routing-level failures; speak FHIR for them."""
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


def exception_handler(exc: Exception, context: dict) -> Any:
    """DRF's EXCEPTION_HANDLER: every failure leaves as an OperationOutcome."""
    from fhir_api.responses import outcome_response

    error = exc if isinstance(exc, FhirError) else from_drf(exc)
    if error is None:
        # A bug, not a client error: log the traceback, answer 500 as FHIR does.
        logger.exception("unhandled error in FHIR request", exc_info=exc)
        error = FhirError("Internal server error", status=500, code="exception")
    request = context.get("request")
    return outcome_response(request, error)
