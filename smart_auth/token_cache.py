"""Token lookups remembered by each process, forgotten the moment anything they depend on changes.

A bearer token is looked up on every FHIR request. On PostgreSQL that lookup is a network
round trip, as costly as the read it guards, so each process remembers what it found for a
token (the row of smart_auth.access's lookup, never the token itself: the key is its
SHA-256, as stored). A remembered row is only trusted while this process listens on the
database for changes:

- triggers (migration 0004) on the access token, token context, client and user tables
  `NOTIFY smart_access_changed` after any statement that changes them: a revocation, a
  refresh, a client disabled, a person deactivated, by any process, the admin, or SQL;
- a listener thread per process (on DATABASE_DIRECT_URL when a pooler stands in DATABASE_URL)
  receives the notification (at the writer's commit) and
  forgets everything; while it is not connected and listening, nothing is remembered;
- a lookup that raced with a change (it started before the notification arrived) is not
  remembered: the generation counter tells; and a remembered row is not used while a
  notification waits unread on the listener's socket (the thread may be waiting for the GIL).

The remembered rows are re-checked for expiry on every use. SQLite (the embedded default)
has no NOTIFY and no network round trip: lookups there are not remembered.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

CHANNEL = "smart_access_changed"
MAX_ENTRIES = 10_000  # a process serving more distinct live tokens than this starts over
_RETRY_SECONDS = 1.0


class _Watcher:
    """The listener thread of this process, and what it allows to be remembered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, tuple[Any, ...]] = {}
        self.generation = 0
        self.listening = False
        self.socket: int | None = None  # the listener connection's socket, to poll
        self.pid: int | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def ensure_started(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            # A forked worker inherits its parent's memory, not its thread: start afresh.
            self.rows, self.listening, self.pid = {}, False, os.getpid()
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._run, name="smart-token-listener", daemon=True)
            self.thread.start()

    def notified(self) -> bool:
        """A notification is waiting that the listener thread has not handled yet (it may be
        waiting for the GIL): the request thread checks the socket itself."""
        fd = self.socket
        if fd is None:
            return True
        try:
            return bool(select.select([fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def forget(self) -> None:
        with self.lock:
            self.generation += 1
            self.rows.clear()

    def _set_listening(self, listening: bool) -> None:
        with self.lock:
            self.listening = listening
            self.generation += 1
            self.rows.clear()

    def _run(self) -> None:
        import psycopg

        params = listener_params()
        while not self.stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.socket = conn.pgconn.socket
                    self._set_listening(True)
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.forget()
            except Exception as exc:  # the database went away: stop trusting, then retry
                log.warning("token cache listener disconnected (%s); lookups are not remembered",
                            type(exc).__name__)
            self.socket = None
            self._set_listening(False)
            self.stop.wait(_RETRY_SECONDS)


def listener_params() -> dict[str, Any]:
    """libpq parameters of the listener's own connection to the primary: DATABASE_DIRECT_URL
    when set, since LISTEN needs a session of its own, which a transaction-pooling PgBouncer
    (in DATABASE_URL) does not keep; DATABASE_URL otherwise."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    direct = settings.DATABASE_DIRECT
    if direct:
        for key, value in (("host", direct.get("HOST")), ("port", direct.get("PORT")), ("dbname", direct.get("NAME")),
                           ("user", direct.get("USER")), ("password", direct.get("PASSWORD"))):
            params.pop(key, None)
            if value:
                params[key] = value
        params.update(direct.get("OPTIONS", {}))
    return params


_watcher = _Watcher()


def enabled() -> bool:
    return connection.vendor == "postgresql" and settings.SMART_TOKEN_CACHE


def lookup(checksum: str, query: Callable[[], tuple[Any, ...] | None]) -> tuple[Any, ...] | None:
    """The lookup row for a token checksum: remembered, or `query()` (remembered when safe)."""
    if not enabled():
        return query()
    _watcher.ensure_started()
    row = _watcher.rows.get(checksum)
    if row is not None and not _watcher.notified():
        return row
    generation = _watcher.generation
    row = query()
    if row is not None:
        with _watcher.lock:
            if _watcher.listening and _watcher.generation == generation:
                if len(_watcher.rows) >= MAX_ENTRIES:
                    _watcher.rows.clear()
                _watcher.rows[checksum] = row
    return row


def forget() -> None:
    """Forget every remembered lookup of this process (tests; the listener does it on NOTIFY)."""
    _watcher.forget()


def stop() -> None:
    """Stop this process's listener (tests, before their database is dropped)."""
    watcher = _watcher
    watcher.stop.set()
    if watcher.thread is not None:
        watcher.thread.join(timeout=5.0)
    watcher.pid = None
    watcher.forget()


def wait_until_listening(timeout: float = 5.0) -> bool:
    """For tests: block until this process's listener is connected."""
    _watcher.ensure_started()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _watcher.listening:
            return True
        time.sleep(0.01)
    return False
