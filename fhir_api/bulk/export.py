"""The `$export` job: stream the selected rows into ndjson files, one checkpoint per file.

https://hl7.org/fhir/uv/bulkdata/export.html -- each exported type gets one or more files of
at most BULK_EXPORT_FILE_RESOURCES resources. The stored JSON of each row is written as it
is (one line per resource; stored JSON never holds a raw newline), read in row id order
through a server-side cursor (Django's `iterator()` on PostgreSQL), so memory stays flat
whatever the size of the export and no resource is parsed unless `_elements` asks for it.

The export is a snapshot at `transactionTime`: the rows unchanged since then are streamed
from the current table; a resource changed (or deleted) after it is written as the version
it had at that time (from the history table), after the type's other rows. Its filters
(compartment, `_typeFilter`, access) are evaluated on its current index rows.

An export with `_since` also lists the resources deleted since then (the manifest's `deleted`
file of DELETE Bundles). A worker that dies loses at most the file it was writing: the
checkpoint names the files saved so far and the row id to go on from; saving a file again
replaces it (idempotent).
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.files import File
from django.db import connection, transaction
from psycopg.adapt import Loader

from fhir_api.bulk.storage import export_storage, remove_folder, spool_dir
from fhir_api.store import jobs, subsetting
from fhir_api.store.models import Job, Resource, ResourceVersion
from fhir_search import bulk_selection
from smart_auth.access import from_snapshot

KIND = "export"
CHUNK_ROWS = 2000  # rows fetched per round trip of the server-side cursor
BUFFER_BYTES = 1 << 20


class _Spooled(File):
    """A finished spool file: FileSystemStorage moves it into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return self.name


class _Part:
    """One output file being written to the local spool."""

    def __init__(self, job_id: str, name: str) -> None:
        self.name = name
        self.path = spool_dir() / f"{job_id}-{name}"
        self.file = open(self.path, "wb", buffering=BUFFER_BYTES)  # noqa: SIM115
        self.count = 0

    def write(self, data: bytes) -> None:
        """One line: UTF-8 JSON as stored (bytes straight from the database, never decoded)."""
        self.file.write(data)
        self.file.write(b"\n")
        self.count += 1

    def write_all(self, lines: list[bytes]) -> None:
        """Several lines in one write (a cursor chunk: no Python call per resource)."""
        if lines:
            self.file.write(b"\n".join(lines))
            self.file.write(b"\n")
            self.count += len(lines)

    def save(self, job_id: str) -> dict[str, Any] | None:
        """Put the file in the export storage (replacing one an earlier attempt saved)."""
        self.file.close()
        if not self.count:
            self.path.unlink(missing_ok=True)
            return None
        storage = export_storage()
        target = f"{job_id}/{self.name}"
        if storage.exists(target):
            storage.delete(target)
        with open(self.path, "rb") as handle:
            saved = storage.save(target, _Spooled(handle, name=str(self.path)))
        self.path.unlink(missing_ok=True)
        return {"name": saved.rsplit("/", 1)[-1], "count": self.count}

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _elements_for(resource_type: str, elements: list[str] | None) -> list[str] | None:
    """The `_elements` that apply to a type (plain names and `Type.name`); None: all of it."""
    if not elements:
        return None
    mine = [e.split(".", 1)[1] if "." in e else e for e in elements
            if "." not in e or e.split(".", 1)[0] == resource_type]
    return mine or None


def _line(data: bytes, elements: list[str] | None) -> bytes:
    if elements is None:
        return data
    return orjson.dumps(subsetting.select_elements(orjson.loads(data), elements))


class _Utf8Bytes(Loader):
    """Text columns as the bytes PostgreSQL sends (UTF-8): the stored JSON goes to the file
    without being decoded into a str and encoded back (half the worker's time, profiled)."""

    def load(self, data) -> bytes:
        return bytes(data)


def _chunks(rows) -> Iterator[list[tuple[int, bytes]]]:
    """Lists of (row id, stored JSON as UTF-8 bytes) of a `values_list("id", "data")`
    queryset, in its order, CHUNK_ROWS at a time, through a server-side cursor (call inside a
    transaction: PostgreSQL then streams the rows; outside one Django declares the cursor WITH
    HOLD and PostgreSQL materialises the whole result before the first row)."""
    if connection.vendor != "postgresql":
        chunk: list[tuple[int, bytes]] = []
        for row_id, data in rows.iterator(chunk_size=CHUNK_ROWS):
            chunk.append((row_id, data.encode()))
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    try:
        sql, params = rows.query.get_compiler(using=rows.db).as_sql()
    except EmptyResultSet:  # a condition nothing can match (e.g. no patient to narrow to)
        return
    connection.ensure_connection()
    with connection.connection.cursor(name=f"fhir_export_{secrets.token_hex(6)}") as cursor:
        cursor.adapters.register_loader("text", _Utf8Bytes)
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            yield chunk


def run(ctx: jobs.Context) -> dict[str, Any]:
    plan = ctx.params
    at = _instant(plan["transaction_time"])
    since = _instant(plan.get("since"))
    access = from_snapshot(plan["access"]) if plan.get("access") else None
    types: list[str] = plan["types"]
    patients = _patients(plan)
    state = ctx.checkpoint or {"type": 0, "after": 0, "part": 1, "outputs": [], "written": 0}
    size = settings.BULK_EXPORT_FILE_RESOURCES
    while state["type"] < len(types):
        resource_type = types[state["type"]]
        ctx.save(progress=state["type"] / len(types),
                 note=f"exporting {resource_type} (type {state['type'] + 1} of {len(types)}); "
                      f"{state['written']} resources written")
        condition = bulk_selection.condition(
            resource_type, patients=patients, compartment=plan["level"] != "system",
            type_filters=plan.get("type_filters", {}).get(resource_type, []), access=access)
        if condition is None:
            state = {**state, "type": state["type"] + 1, "after": 0, "part": 1}
            continue
        rows = Resource.objects.filter(resource_type=resource_type, deleted=False, last_updated__lte=at)
        if since is not None:
            rows = rows.filter(last_updated__gt=since)
        rows = rows.filter(condition)
        elements = _elements_for(resource_type, plan.get("elements"))
        part = _Part(ctx.job.id, f"{resource_type}-{state['part']}.ndjson")
        try:
            last = state["after"]
            with transaction.atomic():  # the cursor streams inside a transaction (_stream)
                ordered = rows.filter(id__gt=last).order_by("id").values_list("id", "data")
                for chunk in _chunks(ordered[:size]):
                    part.write_all([_line(data, elements) for _, data in chunk])
                    last = chunk[-1][0]
                finished = part.count < size
                if finished:
                    _changed_since_snapshot(part, resource_type, condition, at, since, elements)
            saved = part.save(ctx.job.id)
        except BaseException:
            part.discard()
            raise
        outputs = state["outputs"] + ([{"type": resource_type, **saved}] if saved else [])
        written = state["written"] + (saved["count"] if saved else 0)
        if finished:
            state = {"type": state["type"] + 1, "after": 0, "part": 1, "outputs": outputs, "written": written}
        else:
            state = {"type": state["type"], "after": last, "part": state["part"] + 1, "outputs": outputs,
                     "written": written}
        ctx.save(state, progress=state["type"] / len(types))
    if since is not None and "deleted" not in state:
        ctx.save(note=f"listing deletions; {state['written']} resources written")
        deleted, notes = _write_deletions(ctx.job.id, plan, patients, access, at, since)
        state = {**state, "deleted": deleted, "notes": notes}
        ctx.save(state)
    errors = _write_messages(ctx.job.id, plan.get("warnings", []) + state.get("notes", []))
    return {"output": state["outputs"], "deleted": state.get("deleted", []), "error": errors}


def _write_deletions(job_id: str, plan: dict[str, Any], patients, access, at: datetime, since: datetime
                     ) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifest's `deleted` file: the exported types' resources deleted after `_since`
    (and still deleted at the snapshot), each as a transaction Bundle of one DELETE entry
    (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status); and why the
    deletions of some types could not be listed."""
    compartment = plan["level"] != "system"
    if compartment and patients is not None and not isinstance(patients, list):
        patients = set(patients.values_list("target_id", flat=True))  # a Group's members
    members = set(patients) if patients is not None else None
    notes = []
    part = _Part(job_id, "deleted-1.ndjson")
    try:
        for resource_type in plan["types"]:
            filters = plan.get("type_filters", {}).get(resource_type, [])
            why_not = bulk_selection.deletions_unknowable(resource_type, type_filters=filters, access=access)
            if why_not:
                notes.append(why_not)
                continue
            for row_id, logical_id, version_id in bulk_selection.deletions(resource_type, since, at).iterator(
                    chunk_size=CHUNK_ROWS):
                if compartment and not bulk_selection.was_in_compartment(resource_type, row_id, logical_id,
                                                                         version_id, members):
                    continue
                part.write(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
                    {"request": {"method": "DELETE", "url": f"{resource_type}/{logical_id}"}}]}))
        saved = part.save(job_id)
    except BaseException:
        part.discard()
        raise
    return ([{"type": "Bundle", **saved}] if saved else []), notes


def _patients(plan: dict[str, Any]):
    """The patients a Patient/Group export is about: ids, a subquery, or None (all)."""
    ids = plan.get("patients")
    if plan["level"] == "group":
        members = bulk_selection.group_patients(plan["group"])
        if members is None:
            return []
        if ids is not None:
            return [i for i in ids if i in set(members.values_list("target_id", flat=True))]
        return members
    return ids


def _changed_since_snapshot(part: _Part, resource_type: str, condition, at: datetime, since: datetime | None,
                            elements: list[str] | None) -> None:
    """Resources of the type written after the snapshot: the version they had at it."""
    changed = Resource.objects.filter(resource_type=resource_type, last_updated__gt=at).filter(condition)
    for resource_id in changed.order_by("id").values_list("id", flat=True).iterator(chunk_size=CHUNK_ROWS):
        version = (ResourceVersion.objects.filter(resource_id=resource_id, last_updated__lte=at)
                   .order_by("-version_id").values_list("deleted", "data", "last_updated").first())
        if version is None or version[0]:
            continue  # created after the snapshot, or deleted at it
        if since is not None and version[2] <= since:
            continue
        part.write(_line(version[1].encode(), elements))


def _write_messages(job_id: str, warnings: list[str]) -> list[dict[str, Any]]:
    """Warnings about the request (parameters ignored), as an OperationOutcome ndjson file."""
    if not warnings:
        return []
    part = _Part(job_id, "OperationOutcome-1.ndjson")
    for text in warnings:
        part.write(orjson.dumps({"resourceType": "OperationOutcome", "issue": [
            {"severity": "warning", "code": "not-supported", "diagnostics": text}]}))
    saved = part.save(job_id)
    return [{"type": "OperationOutcome", **saved}] if saved else []


def cleanup(job: Job) -> None:
    """Remove an export's files (cancelled, expired), and any spool file it left."""
    remove_folder(job.id)
    folder = spool_dir()
    for leftover in folder.glob(f"{job.id}-*"):
        leftover.unlink(missing_ok=True)


def file_path(job: Job, name: str) -> str | None:
    """The storage name of one of a completed export's files (None: not one of them)."""
    result = job.result or {}
    names = {item["name"] for group in ("output", "deleted", "error") for item in result.get(group, [])}
    return f"{job.id}/{name}" if name in names else None


def open_file(name: str):
    return export_storage().open(name, "rb")


def _ttl() -> timedelta:
    return timedelta(hours=settings.BULK_EXPORT_TTL_HOURS)


jobs.register(jobs.Kind(KIND, run, cleanup, _ttl, reads_replica=True))
