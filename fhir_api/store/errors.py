"""One error hierarchy for the FHIR API, always answered as an OperationOutcome.

https://hl7.org/fhir/R4/operationoutcome.html and https://hl7.org/fhir/R4/http.html#2.21.0.4:
an error is raised once, where it is found, and rendered in one place
(`fhir_api.rest.responses.exception_handler`). This module holds the classes only, so the
store can raise them without knowing how the REST floor answers.
"""
from __future__ import annotations

from typing import Any, TypedDict


class Issue(TypedDict, total=False):
    severity: str
    code: str
    diagnostics: str
    expression: list[str]
    location: list[str]


def issue(severity: str, code: str, diagnostics: str, expression: str | None = None) -> Issue:
    """One issue; its element as a FHIRPath `expression`, and in `location` too, which R4
    deprecates but clients written for DSTU2/STU3 still read (operationoutcome.html)."""
    found = Issue(severity=severity, code=code, diagnostics=diagnostics)
    if expression:
        found["expression"] = [expression]
        found["location"] = [expression]
    return found


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


class LengthRequired(FhirError):
    status, code = 411, "required"


class PayloadTooLarge(FhirError):
    """A request body (or its decompressed form) beyond FHIR_MAX_BODY_BYTES."""

    status, code = 413, "too-long"


class TooCostly(FhirError):
    """A request beyond one of the server's limits on work (search clauses, chains, time...)."""

    status, code = 400, "too-costly"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    """The content is well-formed but breaks the rules of its definition."""

    status, code = 422, "processing"


class NotImplementedYet(FhirError):
    status, code = 501, "not-supported"


class ServiceUnavailable(FhirError):
    """The database cannot be reached (down, restarting, no free connection): retry later."""

    status, code = 503, "transient"
