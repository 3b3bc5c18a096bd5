"""A job's status URL and an export's files: `[base]/_jobs/[id]` and `[base]/_jobs/[id]/[file]`.

https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-status-request -- GET answers 202
with `X-Progress` and `Retry-After` while the job runs (429 to a client that polls sooner
than BULK_EXPORT_POLL_SECONDS after its last poll), then 200 with the export's manifest (or
a $reindex's Parameters), or an OperationOutcome with 500 when the job failed. DELETE
cancels it (202) and removes its files; afterwards the URL is 404. Only the client (and
user) that started a job sees it: another gets 404, as for a job that does not exist.
Files are streamed from the export storage as application/fhir+ndjson.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.http import http_date

from fhir_api.bulk import export
from fhir_api.rest.responses import render
from fhir_api.rest.views.base import FhirViewSet
from fhir_api.store import jobs
from fhir_api.store.errors import FhirError, NotFound
from fhir_api.store.models import Job

NDJSON = "application/fhir+ndjson"
FILE_BLOCK_BYTES = 1 << 20


class TooManyRequests(FhirError):
    status, code = 429, "throttled"


def _owned(request: HttpRequest, job_id: str) -> Job:
    """The job, if it exists, is still there, and belongs to the requester's client and user."""
    job = Job.objects.filter(id=job_id).first()
    missing = NotFound(f"There is no job {job_id[:64]} (it may have been cancelled or expired)")
    if job is None or job.status in (Job.CANCELLED, Job.EXPIRED):
        raise missing
    access = getattr(request, "access", None)
    if access is not None and (job.owner_client != access.client_id or
                               (job.owner_user is not None and job.owner_user != access.user_id)):
        raise missing
    if job.status == Job.COMPLETED and job.expires_at is not None and job.expires_at <= jobs.now():
        jobs.expire(job)
        raise missing
    return job


def _throttle(job: Job) -> None:
    """One poll per BULK_EXPORT_POLL_SECONDS: a conditional UPDATE, so two fast polls cannot both pass."""
    at = jobs.now()
    window = timedelta(seconds=settings.BULK_EXPORT_POLL_SECONDS)
    if not Job.objects.filter(id=job.id).filter(Q(polled_at=None) | Q(polled_at__lte=at - window)).update(
            polled_at=at):
        retry = str(max(1, round(settings.BULK_EXPORT_POLL_SECONDS)))
        raise TooManyRequests(f"Polled too often: wait {retry} s between status requests",
                              headers={"Retry-After": retry})


def _progress(job: Job) -> str:
    if job.status == Job.QUEUED:
        return "queued" + (f" (attempt {job.attempts + 1}; {job.error})" if job.attempts else "")
    return f"{round(job.progress * 100)}%" + (f": {job.progress_note}" if job.progress_note else "")


def manifest(job: Job) -> dict[str, Any]:
    """The Bulk Data manifest of a completed export."""
    plan, result = job.params, job.result or {}
    folder = f"{plan['base']}/_jobs/{job.id}"

    def items(group: str) -> list[dict[str, Any]]:
        return [{"type": i["type"], "url": f"{folder}/{i['name']}", "count": i["count"]} for i in result.get(group, [])]

    return {
        "transactionTime": plan["transaction_time"],
        "request": plan["request"],
        "requiresAccessToken": plan["requires_token"],
        "output": items("output"),
        # Resources deleted since `_since` (Bulk Data 2.0.0): transaction Bundles of DELETE entries.
        "deleted": items("deleted"),
        "error": items("error"),
    }


def _reindex_parameters(result: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "resources", "valueInteger": result["resources"]},
        {"name": "indexRows", "valueInteger": result["indexRows"]},
        {"name": "complete", "valueBoolean": result["complete"]},
    ]
    if "resumeFromId" in result:
        parameters.append({"name": "resumeFromId", "valueInteger": result["resumeFromId"]})
    parameters += [{"name": "inactiveSearchParameter", "valueString": text}
                   for text in result.get("inactiveSearchParameters", [])]
    return {"resourceType": "Parameters", "parameter": parameters}


class JobViewSet(FhirViewSet):
    def status(self, request: HttpRequest, job_id: str) -> HttpResponse:
        job = _owned(request, job_id)
        if job.status in jobs.ACTIVE:
            _throttle(job)
            if jobs.recover_stale(job.id) or job.status == Job.RUNNING:  # its worker died: queued again
                job.refresh_from_db()
            if settings.FHIR_JOBS == "embedded":
                jobs.dispatch(job.id)  # this process's runner thread starts if it is not running
            if job.status == Job.FAILED:
                raise FhirError(f"The {job.kind} job failed: {job.error}", status=500, code="exception")
            response = HttpResponse(status=202)
            response["X-Progress"] = _progress(job)[:200]
            response["Retry-After"] = str(settings.BULK_EXPORT_RETRY_AFTER)
            return response
        if job.status == Job.FAILED:
            raise FhirError(f"The {job.kind} job failed: {job.error}", status=500, code="exception")
        if job.kind == export.KIND:
            response = HttpResponse(orjson.dumps(manifest(job)), content_type="application/json")
            if job.expires_at is not None:
                response["Expires"] = http_date(job.expires_at.timestamp())
            return response
        return render(request, _reindex_parameters(job.result or {}))

    def cancel(self, request: HttpRequest, job_id: str) -> HttpResponse:
        job = _owned(request, job_id)
        if not jobs.cancel(job):
            raise NotFound(f"There is no job {job_id[:64]} to cancel")
        return render(request, {"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational",
             "diagnostics": f"The {job.kind} job was cancelled and its files removed"}]}, status=202)

    def file(self, request: HttpRequest, job_id: str, name: str) -> HttpResponse:
        job = _owned(request, job_id)
        path = export.file_path(job, name) if job.kind == export.KIND and job.status == Job.COMPLETED else None
        if path is None:
            raise NotFound(f"The export {job_id[:64]} has no file {name[:100]}")
        response = FileResponse(export.open_file(path), content_type=NDJSON)
        response.block_size = FILE_BLOCK_BYTES
        return response

