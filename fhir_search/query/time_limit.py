"""A time limit on the database work of one search (FHIR_SEARCH_TIMEOUT_MS).

https://hl7.org/fhir/R4/search.html#errors -- a search the server will not finish is answered
with an OperationOutcome (`too-costly`), never a worker killed mid-request. PostgreSQL:
`SET LOCAL statement_timeout` in a savepoint (undone when it ends, so an outer transaction
keeps its own setting), on the database the search reads (a replica, in a read-only request:
fhir_api.store.routing). SQLite: a progress handler that interrupts the statement once the
deadline has passed.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection, transaction

from fhir_api.store import routing

from fhir_api.store.errors import TooCostly

_SQLITE_STEPS = 10_000  # VM instructions between two looks at the clock (cheap, fine-grained)


def _too_costly(ms: int) -> TooCostly:
    return TooCostly(f"The search took longer than this server's limit of {ms} ms (FHIR_SEARCH_TIMEOUT_MS); "
                     "narrow it with more selective parameters")


@contextmanager
def search_time_limit(ms: int | None = None) -> Iterator[None]:
    ms = ms or settings.FHIR_SEARCH_TIMEOUT_MS
    if connection.vendor == "postgresql":
        with _postgresql(ms):
            yield
    elif connection.vendor == "sqlite":
        with _sqlite(ms):
            yield
    else:  # pragma: no cover - the two databases the project supports
        yield


@contextmanager
def _postgresql(ms: int) -> Iterator[None]:
    alias = routing.reading_alias()
    try:
        with transaction.atomic(using=alias):
            with transaction.get_connection(alias).cursor() as cursor:
                cursor.execute("SELECT current_setting('statement_timeout'),"
                               " set_config('statement_timeout', %s, true)", [f"{int(ms)}ms"])
                before = cursor.fetchone()[0]
            yield
            with transaction.get_connection(alias).cursor() as cursor:  # a released savepoint keeps SET LOCAL: undo it
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
    except OperationalError as exc:
        if type(exc.__cause__).__name__ == "QueryCanceled":
            raise _too_costly(ms) from None
        raise


@contextmanager
def _sqlite(ms: int) -> Iterator[None]:
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + ms / 1000
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _SQLITE_STEPS)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc):
            raise _too_costly(ms) from None
        raise
    finally:
        raw.set_progress_handler(None, 0)
