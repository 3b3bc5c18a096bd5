"""HTTP answers of the FHIR API: resources, Bundles and OperationOutcomes, with their headers.

https://hl7.org/fhir/R4/http.html -- ETag, Last-Modified, Location and `Prefer: return=`.
The stored JSON is sent as-is whenever the client asked for plain JSON of the whole resource.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date

from fhir_api import jsonio, subsetting
from fhir_api.errors import FhirError, NotAcceptable
from fhir_api.formats import DEFAULT, Format, response_format
from fhir_api.repository import Stored


def base_url(request: HttpRequest) -> str:
    """The FHIR base that links and Location headers are built on."""
    return settings.FHIR_BASE_URL or request.build_absolute_uri("/fhir")


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
        if fmt == DEFAULT and not elements and summary in (None, "false"):
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
    response = HttpResponse(fmt.render(error.outcome()), status=error.status, content_type=fmt.content_type)
    for key, value in error.headers.items():
        response[key] = value
    return response


def bundle_body(request: HttpRequest, bundle: dict[str, Any]) -> HttpResponse:
    """A Bundle whose entries may hold stored JSON as `orjson.Fragment`s (no re-parsing)."""
    fmt = response_format(request)
    if fmt.xml or fmt.pretty:
        bundle = jsonio.loads(jsonio.dumps(bundle))  # fragments to plain values for XML/pretty
    return HttpResponse(fmt.render(bundle), content_type=fmt.content_type)
