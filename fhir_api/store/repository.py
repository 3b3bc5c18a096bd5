"""The versioned resource store: the only module that writes resources.

https://hl7.org/fhir/R4/http.html -- create, update, delete and patch all come through
`write`, which, in one database transaction: locks the current row, checks the expected
version (If-Match), writes the current row and an immutable version row, and sends
`resource_written` so the search index changes in the same transaction. REST views,
transactions, the admin and imports all call these functions, so concurrency and
atomicity are proved here once.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q

from fhir_api.store import audit, jsonio, routing, statistics, validation
from fhir_api.store.errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed
from fhir_api.store.models import Resource, ResourceVersion
from fhir_api.store.prepared import prepared_cursor
from fhir_api.store.signals import resource_written, resources_written
from fhir_api.store.structure import resource_types

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
_HISTORY_CURSOR = re.compile(r"([0-9]{1,16})-([0-9]{1,18})\Z")


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of a resource as stored: the JSON bytes are what clients receive."""

    resource_type: str
    logical_id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    data: str  # JSON text ("" for a deletion)
    method: str = ""
    created: bool = False  # (history) this version brought the resource into being: 201, not 200

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def content(self) -> dict[str, Any]:
        return jsonio.loads(self.data)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.logical_id}"


@dataclass(frozen=True, slots=True)
class Written:
    stored: Stored
    created: bool  # a new resource (201) rather than a new version of one (200)
    changed: bool = True  # False when a delete found nothing to delete


def check_type(resource_type: str) -> None:
    if resource_type not in resource_types():
        raise NotFound(f"Unknown resource type '{resource_type}'", code="not-supported")


def valid_id(logical_id: str) -> bool:
    # Ids made only of dots match the R4 pattern but are path segments to every URL
    # library (`Patient/..` is the base), so a resource could never be addressed.
    return bool(ID_PATTERN.match(logical_id)) and bool(logical_id.strip("."))


def check_id(logical_id: str) -> None:
    if not valid_id(logical_id):
        shown = logical_id.encode("unicode_escape").decode("ascii")[:100]  # NUL and friends, readable
        raise BadRequest(f"'{shown}' is not a valid resource id ([A-Za-z0-9-.]{{1,64}}, not only dots)")


def now() -> datetime:
    """Server time at millisecond precision: what meta.lastUpdated shows is what is stored."""
    t = datetime.now(timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def format_instant(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _stored(row: Resource | ResourceVersion, method: str = "") -> Stored:
    return Stored(row.resource_type, row.logical_id, row.version_id, row.last_updated, row.deleted, row.data, method)


# -- reads -------------------------------------------------------------------------------


_READ_SQL = (
    "SELECT version_id, last_updated, deleted, data FROM fhir_api_resource"
    " WHERE resource_type = %s AND logical_id = %s"
)


def read(resource_type: str, logical_id: str) -> Stored:
    # The hottest query there is: plain SQL on the unique (type, id) index, no ORM query
    # building and no model instance (about a fifth of a read's server time otherwise),
    # prepared on PostgreSQL (planned once per connection, store/prepared.py).
    # A read-only request reads a replica (DATABASE_REPLICA_URLS), a transaction the primary.
    with prepared_cursor(routing.reading_connection()) as cursor:
        cursor.execute(_READ_SQL, [resource_type, logical_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"{resource_type}/{logical_id} is not known")
    version_id, last_updated, deleted, data = row
    if deleted:
        raise Gone(f"{resource_type}/{logical_id} was deleted", headers={"ETag": f'W/"{version_id}"'})
    if isinstance(last_updated, str):  # SQLite hands raw SQL its text form
        last_updated = datetime.fromisoformat(last_updated).replace(tzinfo=timezone.utc)
    return Stored(resource_type, logical_id, version_id, last_updated, False, data)


def vread(resource_type: str, logical_id: str, version_id: int) -> Stored:
    if resource_type == audit.RESOURCE_TYPE:  # one version only, kept as the current row (append_audit)
        stored = _audit_version(logical_id, version_id)
        if stored is None:
            raise NotFound(f"{resource_type}/{logical_id}/_history/{version_id} is not known")
        return stored
    row = ResourceVersion.objects.filter(
        resource__resource_type=resource_type, resource__logical_id=logical_id, version_id=version_id
    ).first()
    if row is None:
        raise NotFound(f"{resource_type}/{logical_id}/_history/{version_id} is not known")
    if row.deleted:
        raise Gone(f"{resource_type}/{logical_id}/_history/{version_id} is a deletion", headers=_version_headers(row))
    return _stored(row, row.method)


def _audit_version(logical_id: str, version_id: int) -> Stored | None:
    row = Resource.objects.filter(resource_type=audit.RESOURCE_TYPE, logical_id=logical_id,
                                  version_id=version_id).first()
    return None if row is None else _stored(row, "POST")


def current_version(resource_type: str, logical_id: str) -> int | None:
    """The current version number, deleted or not, or None if the resource never existed."""
    return (
        Resource.objects.filter(resource_type=resource_type, logical_id=logical_id)
        .values_list("version_id", flat=True)
        .first()
    )


def _version_headers(row: Resource | ResourceVersion) -> dict[str, str]:
    return {"ETag": f'W/"{row.version_id}"'}


# -- writes ------------------------------------------------------------------------------


def prepare(resource_type: str, content: Any, logical_id: str | None = None) -> dict[str, Any]:
    """Check a resource body against its URL and its definition before anything is written."""
    if not isinstance(content, dict):
        raise BadRequest("The body must be a JSON object holding a resource", code="structure")
    body_type = content.get("resourceType")
    if body_type is None:
        raise BadRequest(f"The body has no resourceType (the URL names {resource_type})", code="required")
    if body_type != resource_type:
        raise BadRequest(
            f"The resource type in the body ({jsonio.dumps(body_type).decode()[:80]}) does not match the URL ({resource_type})"
        )
    body_id = content.get("id")
    if logical_id is not None and body_id is not None and body_id != logical_id:
        raise BadRequest(f"The id in the body ({body_id!r}) does not match the id in the URL ({logical_id!r})")
    validation.validate(content)
    return content


def create(resource_type: str, content: dict[str, Any], *, logical_id: str | None = None) -> Written:
    """Create with a server-assigned id (a client's id in the body is ignored, per http.html#create)."""
    check_type(resource_type)
    audit.refuse_write(resource_type)
    if isinstance(content, dict) and "id" in content:
        content = {k: v for k, v in content.items() if k != "id"}
    content = prepare(resource_type, content)
    return write(resource_type, logical_id or str(uuid.uuid4()), content, method="POST", must_be_new=True)


def update(
    resource_type: str, logical_id: str, content: dict[str, Any], *, if_match: int | None = None
) -> Written:
    """Update, or create with the client's id (update as create)."""
    check_type(resource_type)
    check_id(logical_id)
    audit.refuse_write(resource_type)
    content = prepare(resource_type, content, logical_id)
    if content.get("id") is None:
        raise BadRequest("An update must carry the resource id in the body", code="required")
    return write(resource_type, logical_id, content, method="PUT", if_match=if_match)


def delete(resource_type: str, logical_id: str, *, if_match: int | None = None) -> Written | None:
    """Logical delete: a new version marked deleted; history keeps the old ones."""
    check_type(resource_type)
    return write(resource_type, logical_id, None, method="DELETE", if_match=if_match)


def patch(
    resource_type: str,
    logical_id: str,
    apply: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    if_match: int | None = None,
) -> Written:
    """Apply a patch function to the current version and store the result as a new version.

    The row stays locked from read to write so no concurrent update slips in between.
    """
    check_type(resource_type)
    audit.refuse_write(resource_type)
    with transaction.atomic():
        row = _locked_row(resource_type, logical_id)
        if row is None:
            raise NotFound(f"{resource_type}/{logical_id} is not known")
        if row.deleted:
            raise Gone(f"{resource_type}/{logical_id} was deleted")
        _check_version(row, if_match)
        _check_guard_before(row, "u")  # before the patch runs: its errors would tell what it holds
        patched = apply(jsonio.loads(row.data))
        if isinstance(patched, dict) and patched.get("id") != logical_id:
            raise BadRequest("A patch may not change the resource id or type")
        patched = prepare(resource_type, patched, logical_id)
        return write(resource_type, logical_id, patched, method="PATCH", if_match=row.version_id)


def _locked_row(resource_type: str, logical_id: str) -> Resource | None:
    # SELECT ... FOR UPDATE: a second writer of the same resource waits here until the
    # first commits, then sees its version, so no update is ever lost.
    return Resource.objects.select_for_update().filter(resource_type=resource_type, logical_id=logical_id).first()


def _check_version(row: Resource | None, if_match: int | None) -> None:
    if if_match is None:
        return
    if row is None:
        raise PreconditionFailed(f"Version conflict: If-Match asked for version {if_match}, but the resource does not exist")
    if row.version_id != if_match:
        raise PreconditionFailed(
            f"Version conflict: If-Match asked for version {if_match}, the current version is {row.version_id}"
        )


def stamp(content: dict[str, Any], resource_type: str, logical_id: str, version_id: int, at: datetime | str) -> str:
    """The stored JSON: resourceType, id and meta first, meta.versionId/lastUpdated set by us.

    `at` may be given already formatted (format_instant), for a batch written at one instant.
    """
    meta = {"versionId": str(version_id), "lastUpdated": at if isinstance(at, str) else format_instant(at)}
    for key, value in (content.get("meta") or {}).items():
        if key not in meta:
            meta[key] = value
    out: dict[str, Any] = {"resourceType": resource_type, "id": logical_id, "meta": meta}
    for key, value in content.items():
        if key not in out:
            out[key] = value
    return jsonio.dumps(out).decode()


def write(
    resource_type: str,
    logical_id: str,
    content: dict[str, Any] | None,
    *,
    method: str,
    if_match: int | None = None,
    must_be_new: bool = False,
) -> Written:
    """The one writer: current row + version row + index + AuditEvent, atomically. `content=None` deletes."""
    audit.refuse_write(resource_type)
    with transaction.atomic():
        row, created = _next_version(resource_type, logical_id, content, if_match, must_be_new)
        if row is None:
            # Deleting what is not there changes nothing (http.html#delete: still a success).
            gone = Stored(resource_type, logical_id, 0, now(), True, "")
            return Written(gone, False, False)
        ResourceVersion.objects.create(
            resource=row,
            resource_type=resource_type,
            logical_id=logical_id,
            version_id=row.version_id,
            last_updated=row.last_updated,
            deleted=row.deleted,
            method=method,
            data=row.data,
        )
        _note_written(1)
        resource_written.send(sender=Resource, resource=row, content=content)
        if content is not None:
            _check_guard([(row, created)])
        _record_written([audit.WrittenVersion(resource_type, logical_id, row.version_id, method, created, content)])
        return Written(_stored(row, method), created)


def _next_version(
    resource_type: str,
    logical_id: str,
    content: dict[str, Any] | None,
    if_match: int | None,
    must_be_new: bool,
) -> tuple[Resource | None, bool]:
    """Lock (or insert) the current row and move it to its next version."""
    for attempt in range(2):
        row = _locked_row(resource_type, logical_id)
        _check_version(row, if_match)
        if content is None and (row is None or row.deleted):
            return None, False
        if row is not None and not row.deleted:  # its index rows still describe the old version
            _check_guard_before(row, "d" if content is None else "u")
        at = now()
        if row is None:
            if if_match is not None:
                raise PreconditionFailed(f"{resource_type}/{logical_id} does not exist (If-Match)")
            row = Resource(resource_type=resource_type, logical_id=logical_id, version_id=1)
            created = True
        else:
            if must_be_new:
                raise PreconditionFailed(f"{resource_type}/{logical_id} already exists", status=409)
            if row.last_updated >= at:  # keep lastUpdated increasing per resource
                at = row.last_updated + timedelta(milliseconds=1)
            created = row.deleted  # writing over a deletion brings the resource back
            row.version_id += 1
        row.last_updated = at
        row.deleted = content is None
        row.data = "" if content is None else stamp(content, resource_type, logical_id, row.version_id, at)
        if row.pk is not None:
            row.save()
            return row, created
        try:
            # Two writers can both find no row and insert the same (type, id). The
            # savepoint turns the loser's unique violation into a retry: it then locks
            # the winner's committed row and writes the next version on top of it.
            with transaction.atomic():
                row.save()
            return row, created
        except IntegrityError:
            if attempt or must_be_new:
                raise Conflict(f"{resource_type}/{logical_id} was created concurrently; retry") from None
    raise AssertionError("unreachable")


def create_many(items: list[tuple[str, str, dict[str, Any]]]) -> list[Written]:
    """Create many new resources at once: (type, new id, validated content) each.

    For ids the server just assigned (transaction POSTs), so no row can exist and no lock
    is needed: one INSERT for the current rows, one for the versions, one per index table.
    The unique (type, id) constraint still guards against the impossible collision.
    """
    if not items:
        return []
    for rtype, _, _ in items:
        audit.refuse_write(rtype)
    at = now()
    rows = [
        Resource(
            resource_type=rtype, logical_id=logical_id, version_id=1, last_updated=at, deleted=False,
            data=stamp(content, rtype, logical_id, 1, at),
        )
        for rtype, logical_id, content in items
    ]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _copy_new(rows, at)
        else:
            Resource.objects.bulk_create(rows)  # sets the primary keys (RETURNING)
            ResourceVersion.objects.bulk_create([
                ResourceVersion(
                    resource=row, resource_type=row.resource_type, logical_id=row.logical_id, version_id=1,
                    last_updated=at, deleted=False, method="POST", data=row.data,
                )
                for row in rows
            ])
        _note_written(len(rows))
        resources_written.send(sender=Resource, items=[(row, item[2]) for row, item in zip(rows, items, strict=True)])
        _check_guard([(row, True) for row in rows])
        _record_written([audit.WrittenVersion(row.resource_type, row.logical_id, 1, "POST", True, item[2])
                              for row, item in zip(rows, items, strict=True)])
    return [Written(_stored(row, "POST"), True) for row in rows]


# -- the write guard ----------------------------------------------------------------------
# Who may write what is decided above the store (the REST floor knows the token); the store
# only promises to ask, twice, inside the write's transaction so that raising rolls it all
# back: before an existing resource changes (its index rows still describe the version
# being replaced: may this one be updated or deleted?), and after each row is written, once
# its new index rows exist (may the new version be created or updated?). Both use the same
# SQL that narrows reads. `created`: a new resource (or one restored).
class WriteGuard(Protocol):
    def before(self, row: Resource, interaction: str) -> None: ...

    def after(self, rows: list[tuple[Resource, bool]]) -> None: ...


_guard: ContextVar[WriteGuard | None] = ContextVar("write_guard", default=None)


@contextmanager
def guarded(guard: WriteGuard | None) -> Iterator[None]:
    """Run writes under `guard` (None: no guard) for the duration of the block."""
    token = _guard.set(guard)
    try:
        yield
    finally:
        _guard.reset(token)


def _check_guard_before(row: Resource, interaction: str) -> None:
    guard = _guard.get()
    if guard is not None:
        guard.before(row, interaction)


def _check_guard(rows: list[tuple[Resource, bool]]) -> None:
    guard = _guard.get()
    if guard is not None:
        guard.after(rows)


def _note_written(rows: int) -> None:
    """Count written rows for the planner statistics (fhir_api.store.statistics)."""
    statistics.note_written(Resource._meta.db_table, rows)
    statistics.note_written(ResourceVersion._meta.db_table, rows)


def _new_ids(cursor: Any, count: int) -> list[int]:
    """`count` ids of fhir_api_resource taken from its sequence (PostgreSQL), for COPY."""
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('fhir_api_resource', 'id')) FROM generate_series(1, %s)", [count]
    )
    return [pk for (pk,) in cursor.fetchall()]


def _copy_new(rows: list[Resource], at: datetime) -> None:
    """PostgreSQL: take ids from the sequence, then COPY the current and version rows.

    COPY encodes in C; a bulk INSERT of this many JSON documents spends most of its time
    quoting parameters in Python.
    """
    with connection.cursor() as cursor:
        for row, pk in zip(rows, _new_ids(cursor, len(rows)), strict=True):
            row.pk = row.id = pk
        raw = cursor.cursor
        with raw.copy(
            "COPY fhir_api_resource (id, resource_type, logical_id, version_id, last_updated, deleted, data)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row((row.pk, row.resource_type, row.logical_id, 1, at, False, row.data))
        with raw.copy(
            "COPY fhir_api_resourceversion"
            " (resource_id, resource_type, logical_id, version_id, last_updated, deleted, method, data)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row((row.pk, row.resource_type, row.logical_id, 1, at, False, "POST", row.data))
    for row in rows:
        row._state.adding = False


# -- history -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPage:
    entries: list[Stored]
    next_cursor: str | None
    total: int | None


def history(
    *,
    resource_type: str | None = None,
    logical_id: str | None = None,
    since: datetime | None = None,
    at: tuple[datetime, datetime] | None = None,
    count: int,
    cursor: str | None = None,
    with_total: bool = False,
    visible: Q | None = None,
) -> HistoryPage:
    """Versions newest first (http.html#history), paged by a keyset cursor.

    The cursor is the (lastUpdated, row id) of the last entry shown, so writes made while a
    client pages never shift or repeat entries: new versions only appear before page one.
    `visible`: a condition on current rows (the caller's access); only their versions show.
    """
    if resource_type == audit.RESOURCE_TYPE:
        return _audit_history(logical_id, since, at, count, cursor, with_total, visible)
    qs = ResourceVersion.objects.all()
    if visible is not None:
        qs = qs.filter(resource_id__in=Resource.objects.filter(visible).values("pk"))
    if logical_id is not None:
        qs = qs.filter(resource__resource_type=resource_type, resource__logical_id=logical_id)
    elif resource_type is not None:
        qs = qs.filter(resource_type=resource_type)
    else:  # system history: the audit trail has its own (AuditEvent/_history); every read adds to it
        qs = qs.exclude(resource_type=audit.RESOURCE_TYPE)
    if since is not None:
        qs = qs.filter(last_updated__gte=since)
    if at is not None:
        low, high = at
        # Versions current at some time in [low, high): made before high, and not replaced
        # by a newer version before low.
        newer = ResourceVersion.objects.filter(
            resource_id=OuterRef("resource_id"), version_id__gt=OuterRef("version_id"), last_updated__lte=low
        )
        qs = qs.filter(last_updated__lt=high).exclude(Exists(newer))
    total = qs.count() if with_total else None
    qs = _after_cursor(qs, cursor)
    # A version creates its resource when it is the first or follows a deletion (an update as
    # create answered 201; its history entry says so too).
    after_deletion = ResourceVersion.objects.filter(
        resource_id=OuterRef("resource_id"), version_id=OuterRef("version_id") - 1, deleted=True
    )
    qs = qs.annotate(revives=Exists(after_deletion))
    rows, next_cursor = _page(qs, count)
    entries = [
        Stored(r.resource_type, r.logical_id, r.version_id, r.last_updated, r.deleted, r.data, r.method,
               created=not r.deleted and (r.version_id == 1 or r.revives))
        for r in rows
    ]
    return HistoryPage(entries, next_cursor, total)


def _audit_history(
    logical_id: str | None, since: datetime | None, at: tuple[datetime, datetime] | None, count: int,
    cursor: str | None, with_total: bool, visible: Q | None,
) -> HistoryPage:
    """History of AuditEvents: each has one version, never replaced, kept as its current row
    (append_audit writes no version row), so the current rows are the whole history."""
    qs = Resource.objects.filter(resource_type=audit.RESOURCE_TYPE)
    if visible is not None:
        qs = qs.filter(visible)
    if logical_id is not None:
        qs = qs.filter(logical_id=logical_id)
    if since is not None:
        qs = qs.filter(last_updated__gte=since)
    if at is not None:  # current from its creation on: made before the end of the window
        qs = qs.filter(last_updated__lt=at[1])
    total = qs.count() if with_total else None
    rows, next_cursor = _page(_after_cursor(qs, cursor), count)
    entries = [Stored(r.resource_type, r.logical_id, r.version_id, r.last_updated, r.deleted, r.data, "POST",
                      created=True) for r in rows]
    return HistoryPage(entries, next_cursor, total)


def _after_cursor(qs: Any, cursor: str | None) -> Any:
    """Rows after the keyset cursor (lastUpdated, row id) of the previous page's last entry."""
    if not cursor:
        return qs
    # The cursor comes back from the client: anything but what we wrote is a 400, never
    # an overflow in datetime or a 64-bit column.
    m = _HISTORY_CURSOR.match(cursor)
    try:
        if m is None:
            raise ValueError(cursor)
        cursor_at = datetime.fromtimestamp(int(m.group(1)) / 1_000_000, timezone.utc)
        cursor_id = int(m.group(2))
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"Invalid paging cursor '{cursor[:100]}'") from None
    return qs.filter(Q(last_updated__lt=cursor_at) | Q(last_updated=cursor_at, id__lt=cursor_id))


def _page(qs: Any, count: int) -> tuple[list[Any], str | None]:
    """The first `count` rows newest first, and the cursor of the next page (None: last page)."""
    rows = list(qs.order_by("-last_updated", "-id")[: count + 1]) if count > 0 else []
    next_cursor = None
    if len(rows) > count and count > 0:  # _count=0: no entries, so no next page either
        rows = rows[:count]
        last = rows[-1]
        micros = (last.last_updated - _EPOCH) // timedelta(microseconds=1)
        next_cursor = f"{micros}-{last.id}"
    return rows, next_cursor


# -- the audit trail ------------------------------------------------------------------------


def _record_written(versions: list[audit.WrittenVersion]) -> None:
    """Describe what was just written as AuditEvents, in the same transaction (fhir_api.store.audit)."""
    describe = audit.recorder()
    if describe is not None and versions:
        append_audit(describe(versions))


@dataclass(frozen=True, slots=True)
class AppendedEvent:
    """An AuditEvent just appended: its row id and stored JSON (all its index rows need)."""

    pk: int
    logical_id: str
    data: str
    resource_type: str = audit.RESOURCE_TYPE
    version_id: int = 1
    deleted: bool = False


def append_audit(events: list[dict[str, Any]]) -> list[AppendedEvent]:
    """Append AuditEvents (JSON objects without id/meta) in one transaction; returns their rows.

    Every entry of a transaction Bundle gets one, so this is on the ingest path and kept lean
    (issue 14): no validation or locks (the server builds these events itself), no model
    instances, one instant for the batch, and only the current row: an AuditEvent is never
    changed, so its one version is that row (vread and history read it there; see
    `_audit_history`) and a version row would only copy it. COPY on PostgreSQL; index rows by
    fhir_search on `audit_appended`, not `resources_written`.
    """
    if not events:
        return []
    at = now()
    at_text = format_instant(at)
    rtype = audit.RESOURCE_TYPE
    ids = [str(uuid.uuid4()) for _ in events]
    datas = [stamp(content, rtype, logical_id, 1, at_text) for content, logical_id in zip(events, ids, strict=True)]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                pks = _new_ids(cursor, len(events))
                with cursor.cursor.copy(
                    "COPY fhir_api_resource (id, resource_type, logical_id, version_id, last_updated, deleted, data)"
                    " FROM STDIN"
                ) as copy:
                    for pk, logical_id, data in zip(pks, ids, datas, strict=True):
                        copy.write_row((pk, rtype, logical_id, 1, at, False, data))
        else:
            rows = Resource.objects.bulk_create([
                Resource(resource_type=rtype, logical_id=logical_id, version_id=1, last_updated=at, deleted=False,
                         data=data)
                for logical_id, data in zip(ids, datas, strict=True)
            ])
            pks = [row.pk for row in rows]
        statistics.note_written(Resource._meta.db_table, len(events))
        appended = [AppendedEvent(pk, logical_id, data) for pk, logical_id, data in zip(pks, ids, datas, strict=True)]
        audit.audit_appended.send(sender=Resource, items=list(zip(appended, events, strict=True)))
    return appended
