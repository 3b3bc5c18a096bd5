"""The audit trail in the store: AuditEvents appended, never changed (IHE BALP, R4 AuditEvent).

https://profiles.ihe.net/ITI/BALP/ -- every interaction leaves an AuditEvent. They are kept
as ordinary resources (a current row and index rows, so read, search, paging and the access
filter work on them as on any type; an AuditEvent has one version, never replaced, so it has
no version row: vread and history read the current row), but only the store writes them,
and only by appending: the repository refuses every write of the type, and triggers refuse
UPDATE and DELETE of their rows (PostgreSQL: migration 0002 of fhir_api; SQLite: 0005), except
a DELETE in the retention command's transaction (`audit_retention`), which on PostgreSQL sets
`fhir.audit_retention` and on SQLite holds a row in `fhir_audit_retention` until it commits.

What an event says is decided above the store (who asked is known to the REST floor and the
authorization server), so the store only offers three things:
- `repository.append_audit(events)`: write AuditEvent JSON objects (bulk, one statement per table);
- a recorder hook: smart_auth.audit registers a function that turns written versions into
  AuditEvents; the repository calls it inside the write's transaction, so no write commits
  without its audit record and a rolled-back write leaves none;
- `prune(before)`: the retention command's delete of old events.
Index rows of the new events are written by fhir_search on `audit_appended` (sent inside the
same transaction), from the events' known fields rather than by FHIRPath extraction (which
costs a millisecond per event, more than the read it records).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.dispatch import Signal

from fhir_api.store.errors import MethodNotAllowed
from fhir_api.store.models import Resource

RESOURCE_TYPE = "AuditEvent"
# The PostgreSQL setting a transaction sets (SET LOCAL) to let the retention command delete.
RETENTION_SETTING = "fhir.audit_retention"
# SQLite's equivalent: a row here, inserted and deleted inside the retention transaction.
RETENTION_TABLE = "fhir_audit_retention"

# kwargs: items, a list of (repository.AppendedEvent, content) of the AuditEvents just appended.
audit_appended = Signal()


def refuse_write(resource_type: str) -> None:
    """AuditEvents are written by the server only, and never changed (405 for any write)."""
    if resource_type == RESOURCE_TYPE:
        raise MethodNotAllowed(
            "The audit trail is append-only: AuditEvents are recorded by this server and cannot be "
            "created, updated, patched or deleted through the API",
            headers={"Allow": "GET, HEAD, OPTIONS"},
        )


@dataclass(frozen=True, slots=True)
class WrittenVersion:
    """One version the repository just wrote, as the audit recorder sees it."""

    resource_type: str
    logical_id: str
    version_id: int
    method: str  # POST, PUT, PATCH, DELETE
    created: bool
    content: dict[str, Any] | None  # None for a deletion


Recorder = Callable[[list[WrittenVersion]], list[dict[str, Any]]]
_recorder: Recorder | None = None
# Set while a block must write without audit records of its own (the retention command,
# tests of the store); the REST floor never sets it.
_silenced: ContextVar[bool] = ContextVar("audit_silenced", default=False)


def register_recorder(recorder: Recorder | None) -> None:
    """The function that describes writes as AuditEvents (registered by the REST floor's app)."""
    global _recorder
    _recorder = recorder


def recorder() -> Recorder | None:
    """The registered recorder, unless a `silenced` block is running."""
    return None if _silenced.get() else _recorder


class silenced:
    """Write without recording AuditEvents for the writes in the block (context manager)."""

    def __enter__(self) -> None:
        self._token = _silenced.set(True)

    def __exit__(self, *exc: object) -> None:
        _silenced.reset(self._token)



def prune(before: datetime, batch: int = 5000) -> int:
    """Delete AuditEvents recorded before `before` (the retention command only); returns how many.

    Batches of `batch`, each its own transaction, so a large backlog never holds long locks.
    Each transaction first lets the append-only triggers pass its DELETEs.
    """
    deleted = 0
    while True:
        with transaction.atomic(), _retention_pass():
            ids = list(Resource.objects.filter(resource_type=RESOURCE_TYPE, last_updated__lt=before)
                       .order_by("id").values_list("id", flat=True)[:batch])
            if not ids:
                return deleted
            # Versions and index rows go with their resource (foreign keys, deleted by Django).
            Resource.objects.filter(id__in=ids).delete()
            deleted += len(ids)


@contextmanager
def _retention_pass() -> Iterator[None]:
    """Inside a transaction: the triggers let this block's DELETEs of AuditEvents through.
    PostgreSQL: a setting local to the transaction. SQLite: a row that is gone again before
    the commit (SQLite has one writer at a time; no other connection ever sees it)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL {RETENTION_SETTING} = 'on'")
        elif connection.vendor == "sqlite":
            cursor.execute(f"INSERT INTO {RETENTION_TABLE} (pass) VALUES (1)")
    yield
    # Closed again at the end of the block, not only at the commit: inside an outer transaction
    # (a savepoint) it would otherwise last as long as that one. An exception rolls the block
    # back, and with it the setting or the row.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL {RETENTION_SETTING} = 'off'")
        elif connection.vendor == "sqlite":
            cursor.execute(f"DELETE FROM {RETENTION_TABLE}")
