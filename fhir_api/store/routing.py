"""Which database a read goes to: the primary, or a streaming read replica (DATABASE_REPLICA_URLS).

Writes always go to the primary (alias `default`). Reads go to a replica only inside a
`reading_from(alias)` scope, which the REST layer opens for the read-only interactions
(read, vread, history, search, $everything; fhirproject.replicas) and the job runner opens
for a bulk export (`caught_up_replica`). Even inside such a scope a read goes to the primary when:

- the primary is inside a transaction (`transaction.atomic()` on `default`): what a
  transaction reads decides what it writes, so it must see the primary's current rows;
- the model is not replicated data the scope may read stale: the job table (its status and
  lease change under a running job), and every model outside the store and search index
  (tokens, clients, users, sessions, consent bookkeeping, sign-in throttling), which the
  server reads to decide who may do what and must never see late.

Django's router covers ORM queries; the few raw-SQL reads of the hot paths ask
`reading_connection()` for the connection instead of using `django.db.connection`.
A replica that cannot be reached is left out for DATABASE_REPLICA_RETRY_SECONDS (per process);
with none left, reads go to the primary.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

log = logging.getLogger(__name__)

PRIMARY = DEFAULT_DB_ALIAS
# Apps whose tables hold the replicated FHIR data and its search index.
_REPLICA_APPS = frozenset({"fhir_api", "fhir_search"})
# ...except these, read to coordinate work that is going on right now.
_PRIMARY_MODELS = frozenset({"fhir_api.job"})

_reading_from: ContextVar[str | None] = ContextVar("fhir_reading_from", default=None)


def replica_aliases() -> list[str]:
    return list(getattr(settings, "DATABASE_REPLICA_ALIASES", ()))


def reading_alias() -> str:
    """The alias a read of the FHIR data goes to right now (the primary unless in a replica scope)."""
    alias = _reading_from.get()
    if alias is None or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    return alias


def reading_connection() -> Any:
    """The connection for a raw-SQL read of the FHIR data (see `reading_alias`)."""
    return connections[reading_alias()]


@contextmanager
def reading_from(alias: str | None) -> Iterator[None]:
    """Reads of the FHIR data in this block (this thread or task) go to `alias` (None: the primary)."""
    token = enter(alias)
    try:
        yield
    finally:
        leave(token)


def enter(alias: str | None) -> Token:
    """Begin reading from `alias` where a `with` block cannot span the work (a middleware)."""
    return _reading_from.set(alias)


def leave(token: Token) -> None:
    _reading_from.reset(token)


class ReplicaRouter:
    """Django database router (DATABASE_ROUTERS) for the primary and its read replicas."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        alias = _reading_from.get()
        if alias is None or model._meta.app_label not in _REPLICA_APPS or model._meta.label_lower in _PRIMARY_MODELS:
            return PRIMARY
        return PRIMARY if connections[PRIMARY].in_atomic_block else alias

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # replicas hold the primary's rows: objects from either may be related

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == PRIMARY  # a standby is read-only; it replays the primary's migrations


# -- choosing a replica --------------------------------------------------------------------


class _Replicas:
    """Round robin over the replicas this process has not found unreachable lately."""

    def __init__(self) -> None:
        self._turn = itertools.count()
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def choose(self) -> str | None:
        aliases = replica_aliases()
        if not aliases:
            return None
        start = next(self._turn)
        for i in range(len(aliases)):
            alias = aliases[(start + i) % len(aliases)]
            if not self._may_try(alias):
                continue
            if self._reachable(alias):
                with self._lock:
                    self._down_until.pop(alias, None)
                return alias
            self.mark_down(alias)
            log.warning("read replica %s is unreachable: reads go to the primary for %g s", alias,
                        settings.DATABASE_REPLICA_RETRY_SECONDS)
        return None

    def _may_try(self, alias: str) -> bool:
        """Not left out; or left out and due for another try, which this thread claims (the
        others keep reading elsewhere rather than each wait for a replica that may still be down)."""
        with self._lock:
            down_until = self._down_until.get(alias)
            if down_until is None:
                return True
            if down_until > time.monotonic():
                return False
            self._down_until[alias] = time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS
            return True

    def mark_down(self, alias: str) -> None:
        with self._lock:
            self._down_until[alias] = time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS

    @staticmethod
    def _reachable(alias: str) -> bool:
        # Replicas have CONN_HEALTH_CHECKS: the first cursor of each request checks the pooled
        # connection (one SELECT 1) and opens a new one if it died, within DATABASE_REPLICA_TIMEOUT.
        wrapper = connections[alias]
        try:
            with wrapper.cursor():
                pass
            return True
        except DatabaseError:
            try:
                wrapper.close()
            except DatabaseError:  # pragma: no cover - closing a dead connection may fail too
                pass
            return False


replicas = _Replicas()


def choose_replica() -> str | None:
    """A reachable replica (round robin), or None: read from the primary."""
    return replicas.choose()


@contextmanager
def caught_up_replica(timeout: float | None = None) -> Iterator[str | None]:
    """A scope reading from a replica that has replayed everything the primary had committed
    when the scope began (None and the primary when no replica catches up within `timeout`).

    For work that must see a snapshot at least as new as its start (a bulk export's
    transaction time): the WAL position of the primary now, then the replica's replay
    position until it is past it.
    """
    alias = choose_replica()
    if alias is not None and not _caught_up(alias, settings.DATABASE_REPLICA_CATCH_UP_SECONDS
                                            if timeout is None else timeout):
        log.warning("read replica %s did not catch up with the primary: this job reads the primary", alias)
        alias = None
    with reading_from(alias):
        yield alias


def _caught_up(alias: str, timeout: float) -> bool:
    try:
        with connections[PRIMARY].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            target = cursor.fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)", [target])
                if cursor.fetchone()[0]:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
    except DatabaseError:
        replicas.mark_down(alias)
        return False
