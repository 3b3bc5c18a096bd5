"""Bulk Data `$export` kick-off: `[base]/$export`, `[base]/Patient/$export`, `[base]/Group/[id]/$export`.

https://hl7.org/fhir/uv/bulkdata/export.html (Bulk Data Access 2.0.0) -- GET with query
parameters or POST with a Parameters resource, `Prefer: respond-async` required. The request
is checked here, completely (a bad `_typeFilter` is a 400 now, not a failed job later), then
becomes a job (fhir_api.bulk.export) and the answer is 202 with `Content-Location`: the
status URL (fhir_api.rest.views.jobs).

Parameters: `_outputFormat` (ndjson only), `_since` (which also lists the resources deleted
since, in the manifest's `deleted`), `_type`, `_elements`, `_typeFilter`, `patient` (POST,
Patient and Group levels). `includeAssociatedData` and any other parameter are not supported
(`_until` too: it came with Bulk Data 3.0.0; this is 2.0.0): an error under
`Prefer: handling=strict`, otherwise a warning, in the export's OperationOutcome file. With
SMART on, each exported type needs a `system/` or `user/` read scope; without `_type`, the
export holds the types the token may read.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils import timezone

from fhir_api.rest import authorization
from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import base_url, render
from fhir_api.store import jobs, repository
from fhir_api.store.datetimes import parse_instant
from fhir_api.store.errors import BadRequest, Forbidden
from fhir_api.store.models import Resource
from fhir_api.store.structure import resource_types
from fhir_search import bulk_selection
from smart_auth.access import Access

OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
SUPPORTED = ("_outputFormat", "_since", "_type", "_elements", "_typeFilter", "patient")
EXPORT_LEVELS = ("system", "user")  # scope levels that may export (not patient/)


def prefer_tokens(request) -> dict[str, str]:
    """The Prefer header as {token: value}: `respond-async, handling=strict` ->
    {"respond-async": "", "handling": "strict"} (RFC 7240)."""
    out: dict[str, str] = {}
    for item in request.META.get("HTTP_PREFER", "").replace(";", ",").split(","):
        name, _, value = item.strip().partition("=")
        if name.strip():
            out[name.strip().lower()] = value.strip().strip('"')
    return out


class _Request:
    """The kick-off's parameters, checked, with the warnings about what is ignored."""

    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation
        prefer = prefer_tokens(invocation.request)
        if "respond-async" not in prefer:
            raise BadRequest("$export runs asynchronously: send the header Prefer: respond-async")
        self.strict = prefer.get("handling") == "strict"
        self.warnings: list[str] = []

    def unsupported(self, message: str) -> None:
        if self.strict:
            raise BadRequest(message + " (Prefer: handling=strict)", code="not-supported")
        self.warnings.append(message)

    def strings(self, name: str) -> list[str]:
        out = []
        for value in self.invocation.values(name):
            if isinstance(value, bool) or not isinstance(value, str):
                raise BadRequest(f"$export: {name} takes a string value")
            out.append(value)
        return out

    def listed(self, name: str) -> list[str]:
        """A comma-separated parameter that may also be repeated."""
        return [item.strip() for raw in self.strings(name) for item in raw.split(",") if item.strip()]


def _names(invocation: Invocation) -> list[str]:
    return list(dict.fromkeys(str(p.get("name")) for p in invocation.parameters.get("parameter", [])))


def _output_format(ask: _Request) -> str:
    values = ask.strings("_outputFormat")
    if len(values) > 1:
        raise BadRequest("$export takes one _outputFormat")
    if values and values[0] not in OUTPUT_FORMATS:
        raise BadRequest(f"_outputFormat {values[0]!r} is not supported; use {', '.join(OUTPUT_FORMATS)}",
                         code="not-supported")
    return "application/fhir+ndjson"


def _since(ask: _Request) -> str | None:
    values = ask.strings("_since")  # valueInstant and valueString both arrive as text
    if len(values) > 1:
        raise BadRequest("$export takes one _since")
    if not values:
        return None
    try:
        since = parse_instant(values[0])
    except ValueError as exc:
        raise BadRequest(f"_since: {exc}") from None
    if since > timezone.now():
        raise BadRequest(f"_since {values[0]} is in the future")
    return since.isoformat()


def _types(ask: _Request, level: str) -> list[str] | None:
    asked = list(dict.fromkeys(ask.listed("_type")))
    unknown = [t for t in asked if t not in resource_types()]
    if unknown:
        raise BadRequest(f"_type: unknown resource types: {', '.join(unknown)}")
    if level != "system" and asked:
        outside = [t for t in asked if t not in bulk_selection.compartment_types()]
        if outside:
            ask.unsupported(f"_type: {', '.join(outside)} are not in the Patient compartment, so a Patient or "
                            "Group export holds none of them")
            asked = [t for t in asked if t not in outside]
            if not asked:
                raise BadRequest("_type: none of the asked types is in the Patient compartment")
    return asked or None


def _elements(ask: _Request) -> list[str] | None:
    elements = ask.listed("_elements")
    for element in elements:
        head, _, tail = element.partition(".")
        name = tail if tail else head
        if (tail and head not in resource_types()) or not name.isidentifier() or "." in tail:
            raise BadRequest(f"_elements: {element!r} is not an element name or [type].[element name]")
    return elements or None


def _type_filters(ask: _Request, types: list[str] | None, access: Access | None) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for raw in ask.strings("_typeFilter"):
        resource_type, mark, query = raw.partition("?")
        if not mark or resource_type not in resource_types():
            raise BadRequest(f"_typeFilter {raw!r} is not [type]?[search query]")
        if types is not None and resource_type not in types:
            raise BadRequest(f"_typeFilter {raw!r}: {resource_type} is not among the exported types (_type)")
        bulk_selection.type_filter_condition(resource_type, [query], access)  # 400 now for a bad query
        filters.setdefault(resource_type, []).append(query)
    return filters


def _patients(ask: _Request, level: str) -> list[str] | None:
    values = ask.invocation.values("patient")
    if not values:
        return None
    if ask.invocation.request.method != "POST":
        raise BadRequest("$export: the patient parameter is taken in a POST (Parameters) only")
    if level == "system":
        raise BadRequest("$export: the patient parameter applies to Patient and Group exports only")
    ids = []
    for value in values:
        reference = value.get("reference") if isinstance(value, dict) else None
        kind, _, ident = (reference or "").rpartition("/")
        if not isinstance(reference, str) or kind.rsplit("/", 1)[-1] != "Patient" or not repository.valid_id(ident):
            raise BadRequest("$export: patient takes valueReference {\"reference\": \"Patient/[id]\"}")
        ids.append(ident)
    return list(dict.fromkeys(ids))


def _may_export(access: Access, resource_type: str) -> bool:
    return any(s.level in EXPORT_LEVELS and s.covers(resource_type, "r") for s in access.scopes) and \
        access.permits(resource_type, "r")


def _stored_types(with_deleted: bool) -> set[str]:
    """Types the store holds (with those of which only deleted resources are left, for a
    `_since` export, which lists deletions)."""
    rows = Resource.objects.all() if with_deleted else Resource.objects.filter(deleted=False)
    return set(rows.order_by().values_list("resource_type", flat=True).distinct())


def _export_types(asked: list[str] | None, level: str, access: Access | None, since: str | None) -> list[str]:
    if asked is not None:
        if access is not None:
            refused = [t for t in asked if not _may_export(access, t)]
            if refused:
                raise Forbidden(f"The access token does not allow exporting {', '.join(refused)} "
                                "(a system/ or user/ read scope is needed for each exported type)")
        return asked
    # The audit trail is not clinical data: exported only when `_type` names AuditEvent (as
    # system history, $everything and searches without _type leave it out).
    candidates = _stored_types(since is not None) - {"AuditEvent"}
    if level != "system":
        candidates &= bulk_selection.compartment_types()
    if access is not None:
        candidates = {t for t in candidates if _may_export(access, t)}
        if not any(s.level in EXPORT_LEVELS and "r" in s.interactions for s in access.scopes):
            raise Forbidden("$export needs a system/ or user/ read scope (e.g. system/*.rs)")
    return sorted(candidates)


def kick_off(invocation: Invocation, level: str) -> HttpResponse:
    request = invocation.request
    ask = _Request(invocation)
    for name in _names(invocation):
        if name == "includeAssociatedData":
            ask.unsupported("includeAssociatedData is not supported: no associated data is added")
        elif name not in SUPPORTED:
            ask.unsupported(f"$export does not support the parameter {name!r}; it was ignored")
    access: Access | None = getattr(request, "access", None)
    group = None
    if level == "group":
        group = invocation.logical_id
        authorization.require_visible(request, "Group", group, "r")
        repository.read("Group", group)  # 404/410 for a Group that is not there
    asked = _types(ask, level)
    plan: dict[str, Any] = {
        "level": level, "group": group, "output_format": _output_format(ask), "since": _since(ask),
        "elements": _elements(ask), "patients": _patients(ask, level),
        "type_filters": _type_filters(ask, asked, access),
    }
    plan["types"] = _export_types(asked, level, access, plan["since"])
    base = base_url(request)
    plan.update({
        "transaction_time": timezone.now().isoformat(),
        "request": request.build_absolute_uri(),
        "base": base,
        "requires_token": access is not None,
        "access": access.snapshot() if access is not None else None,
        "warnings": ask.warnings,
    })
    job = jobs.submit("export", plan, owner_client=access.client_id if access else "",
                      owner_user=access.user_id if access else None)
    issues = [{"severity": "information", "code": "informational",
               "diagnostics": f"Export started; poll {base}/_jobs/{job.id} for its status"}]
    issues += [{"severity": "warning", "code": "not-supported", "diagnostics": w} for w in ask.warnings]
    return render(request, {"resourceType": "OperationOutcome", "issue": issues}, status=202,
                  Content_Location=f"{base}/_jobs/{job.id}")


@operation("export", levels=("system",), asynchronous=True,
           definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export")
def export_system(invocation: Invocation) -> HttpResponse:
    return kick_off(invocation, "system")


@operation("export", levels=("type",), types=("Patient",), asynchronous=True,
           definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export")
def export_patients(invocation: Invocation) -> HttpResponse:
    return kick_off(invocation, "patient")


@operation("export", levels=("instance",), types=("Group",), asynchronous=True,
           definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export")
def export_group(invocation: Invocation) -> HttpResponse:
    return kick_off(invocation, "group")
