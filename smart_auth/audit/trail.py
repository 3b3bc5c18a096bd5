"""Where AuditEvents go: in the write's transaction for writes, a per-process buffer for the rest.

Writes: the store calls `describe_writes` inside the write's transaction (registered in
SmartAuthConfig.ready), so a write and its AuditEvent commit or roll back together.

Reads, searches, failures and authorization steps: `record()` appends the event to a buffer
in memory and returns; a background thread of the process writes the buffer every
FHIR_AUDIT_FLUSH_MS milliseconds in one transaction (one statement per table, COPY on
PostgreSQL), so a read costs no extra database round trip. The buffer is written at exit
(atexit, and gunicorn's worker_exit hook) so a normal shutdown loses nothing; a killed
process (SIGKILL, OOM) loses at most the last FHIR_AUDIT_FLUSH_MS of read events.
With FHIR_AUDIT_FLUSH_MS=0 every event is written at once, in the caller's thread (tests).

The actor of the current request (who, from where) is a ContextVar set by the REST floor and
the authorization server's views.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from fhir_api.store import audit as store_audit, repository
from smart_auth.access import SET_ASIDE, current as current_access
from smart_auth.audit import balp

logger = logging.getLogger(__name__)

# Who is behind the request being served (None outside requests: commands, the shell).
actor: ContextVar[balp.Actor | None] = ContextVar("audit_actor", default=None)
# What the REST floor is doing, for describing writes ("update", "transaction"...).
interaction: ContextVar[str] = ContextVar("audit_interaction", default="")
# How many AuditEvents the store recorded for the current request's writes.
_written: ContextVar[list[int] | None] = ContextVar("audit_written", default=None)

SYSTEM_ACTOR = balp.Actor(username="system (no request)")


def enabled() -> bool:
    """Whether AuditEvents are recorded: always while tokens are checked (FHIR_AUTH_REQUIRED),
    whatever FHIR_AUDIT says; off only with FHIR_AUDIT=false and authentication off."""
    return settings.FHIR_AUDIT or settings.FHIR_AUTH_REQUIRED


@contextmanager
def acting(who: balp.Actor, what: str = "") -> Iterator[list[int]]:
    """Run a request as `who`; yields a one-item list counting the write events recorded."""
    counter = [0]
    tokens = (actor.set(who), interaction.set(what), _written.set(counter))
    try:
        yield counter
    finally:
        actor.reset(tokens[0])
        interaction.reset(tokens[1])
        _written.reset(tokens[2])


_METHOD_INTERACTION = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def describe_writes(versions: list[store_audit.WrittenVersion]) -> list[dict[str, Any]]:
    """The store's recorder: one BALP event per written version (inside its transaction)."""
    if not enabled():
        return []
    who = actor.get() or SYSTEM_ACTOR
    access = current_access.get()  # the write guard noted the writes only break-the-glass allowed
    set_aside = access.memo.get(SET_ASIDE, ()) if access is not None and access.break_glass else ()
    events = []
    for v in versions:
        reference = f"{v.resource_type}/{v.logical_id}/_history/{v.version_id}"
        kind = _METHOD_INTERACTION.get(v.method, "update")
        if kind == "update" and v.created:
            kind = "create"  # update as create (http.html#upsert)
        current = f"{v.resource_type}/{v.logical_id}"
        events.append(balp.rest_event(who, kind, status=201 if v.created else 200, reference=reference,
                                      patient=balp.patient_of(v.resource_type, v.logical_id, v.content),
                                      overridden=(current,) if current in set_aside else ()))
    counter = _written.get()
    if counter is not None:
        counter[0] += len(events)
    return events


# -- the buffer ----------------------------------------------------------------------------

_lock = threading.Lock()
_buffer: list[dict[str, Any]] = []
_flusher: threading.Thread | None = None
_wake = threading.Event()


def record(event: dict[str, Any]) -> None:
    """Keep an AuditEvent for the next flush (or write it now with FHIR_AUDIT_FLUSH_MS=0)."""
    if not enabled():
        return
    if settings.FHIR_AUDIT_FLUSH_MS == 0:
        repository.append_audit([event])
        return
    with _lock:
        _buffer.append(event)
        if len(_buffer) >= settings.FHIR_AUDIT_MAX_BUFFER:
            _wake.set()
    _ensure_flusher()


def flush() -> int:
    """Write every buffered event in one transaction; returns how many."""
    with _lock:
        events = _buffer[:]
        _buffer.clear()
    if not events:
        return 0
    try:
        repository.append_audit(events)
    except DatabaseError:
        if not _written_one_by_one(events):
            # Keep them for the next attempt (the database may be restarting); never drop silently.
            with _lock:
                _buffer[:0] = events
            raise
    return len(events)


def _written_one_by_one(events: list[dict[str, Any]]) -> bool:
    """After a failed batch: write each event alone, so one the database refuses cannot hold
    back the others forever. False when the database refuses every one (it is down)."""
    refused = []
    for event in events:
        try:
            repository.append_audit([event])
        except DatabaseError:
            refused.append(event)
    if len(refused) == len(events):
        return False
    for event in refused:
        logger.error("the database refused an AuditEvent (%s %s); it is lost",
                     event.get("subtype", [{}])[0].get("code"), event.get("recorded"))
    return True


def pending() -> int:
    with _lock:
        return len(_buffer)


def _ensure_flusher() -> None:
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return
    with _lock:
        if _flusher is not None and _flusher.is_alive():
            return
        _flusher = threading.Thread(target=_run, name="audit-flusher", daemon=True)
        _flusher.start()


def _run() -> None:
    interval = settings.FHIR_AUDIT_FLUSH_MS / 1000
    while True:
        _wake.wait(interval)
        _wake.clear()
        try:
            flush()
        except Exception:  # noqa: BLE001 -- logged and retried: the thread must live on
            logger.exception("could not write %s buffered AuditEvents; retrying", pending())
            connection.close()  # a broken connection is replaced on the next attempt
            time.sleep(min(1.0, interval * 10))


def flush_at_exit() -> None:
    try:
        flush()
    except Exception:  # noqa: BLE001
        logger.exception("could not write %s AuditEvents at exit", pending())


atexit.register(flush_at_exit)
