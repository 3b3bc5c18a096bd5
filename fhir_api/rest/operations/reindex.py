"""`$reindex`: index the stored resources again, after SearchParameters were added or changed.

https://hl7.org/fhir/R4/searchparameter.html (a new parameter applies to resources written
before it once they are re-indexed; R4 names no standard operation, so this follows the
common `$reindex` of other servers). `POST [base]/$reindex` re-indexes every type, or the
`type` parameters given; `POST [base]/[type]/$reindex` one type. Optional parameters:
`fromId` (resume at this row id), `limit` (stop after about this many resources, to keep a
request short) and `batchSize`.

It runs as a job (fhir_api.bulk.reindex; https://hl7.org/fhir/R4/async.html): the call
answers 202 with `Content-Location`, the job's status URL, which answers 202 with
`X-Progress` while it runs and then 200 with a Parameters resource: `resources`,
`indexRows`, `complete`, `resumeFromId` when `limit` stopped it early, and one
`inactiveSearchParameter` per stored SearchParameter the server cannot use, with why.
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from fhir_api.store.errors import BadRequest
from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import base_url, render
from fhir_api.store import jobs
from fhir_api.store.structure import resource_types


def _integer(invocation: Invocation, name: str, default: int | None, minimum: int) -> int | None:
    value = invocation.value(name)
    if value is None:
        return default
    try:
        if isinstance(value, str) and not (value.isascii() and value.lstrip("-").isdigit() and len(value) < 19):
            raise ValueError(value)
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"$reindex: {name} must be an integer, not {str(value)[:40]}") from None
    if number < minimum:
        raise BadRequest(f"$reindex: {name} must be at least {minimum}")
    return number


def _types(invocation: Invocation) -> list[str]:
    if invocation.resource_type is not None:
        return [invocation.resource_type]
    types = [t.strip() for v in invocation.values("type") for t in str(v).split(",") if t.strip()]
    unknown = sorted(set(types) - resource_types())
    if unknown:
        raise BadRequest(f"$reindex: unknown resource types: {', '.join(unknown)}")
    return types


@operation("reindex", levels=("system", "type"), affects_state=True, permission="u", everything=True,
           asynchronous=True)
def reindex(invocation: Invocation) -> HttpResponse:
    plan = {
        "types": _types(invocation),
        "from_id": _integer(invocation, "fromId", 0, 0) or 0,
        # Each batch is one transaction holding its rows' locks: a batch of 100,000 made
        # concurrent writers wait 9 s, so the size is capped (and each batch commits).
        "batch_size": min(_integer(invocation, "batchSize", 500, 1) or 500, settings.FHIR_REINDEX_MAX_BATCH),
        "limit": _integer(invocation, "limit", None, 1),
    }
    access = getattr(invocation.request, "access", None)
    job = jobs.submit("reindex", plan, owner_client=access.client_id if access else "",
                      owner_user=access.user_id if access else None)
    status_url = f"{base_url(invocation.request)}/_jobs/{job.id}"
    return render(invocation.request, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational",
         "diagnostics": f"Re-indexing started; poll {status_url} for its progress and result"}]},
        status=202, Content_Location=status_url)
