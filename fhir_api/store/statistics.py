"""Planner statistics kept current after large writes (PostgreSQL ANALYZE).

https://www.postgresql.org/docs/current/routine-vacuuming.html#VACUUM-FOR-STATISTICS --
the planner chooses plans from statistics that ANALYZE gathers. After a bulk load they
describe a near-empty table until autovacuum comes round, and autovacuum may be off or
far behind on a busy database: searches then pick plans that are fine for ten rows and
take minutes for a million. So every writer counts the rows it puts into each table. When
a server process has written FHIR_ANALYZE_ROWS rows into a table, and also at least a fifth
of the rows the table had at its last ANALYZE (the rule autovacuum follows, so a big table
is not analysed for every few thousand rows), it analyses that table once the writing
transaction has committed (inside it, ANALYZE would hold its lock until the commit and two
large transactions would wait for each other). The cost, a sample of at most 30,000 rows
(a fraction of a second), falls on the request that crossed the line. A bulk load
(`manage.py load`, whose files are written by several processes) ends with analyze_all():
every table it may have filled, whatever each process counted.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict

from django.conf import settings
from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)

GROWTH = 0.2  # rows written since the last ANALYZE, as a fraction of the table's rows then

_lock = threading.Lock()
_written: dict[str, int] = defaultdict(int)  # rows per table since this process analysed it
_due: dict[str, int] = {}  # the count at which to look at the table again


def note_written(table: str, rows: int) -> None:
    """Count rows written into `table`; past the line, analyse it after the commit."""
    threshold = settings.FHIR_ANALYZE_ROWS
    if not threshold or not rows or connection.vendor != "postgresql":
        return
    with _lock:
        _written[table] += rows
        if _written[table] < _due.get(table, threshold):
            return
    transaction.on_commit(lambda: _maybe_analyze(table, threshold))


def _maybe_analyze(table: str, threshold: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
            before = cursor.fetchone()[0]  # -1: never analysed
            with _lock:
                written = _written[table]
            if before >= 0 and written < GROWTH * before:
                with _lock:
                    _due[table] = max(threshold, int(GROWTH * before))
                return
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
            after = cursor.fetchone()[0]
        with _lock:
            _written[table] = max(0, _written[table] - written)
            _due[table] = max(threshold, int(GROWTH * after))
        logger.info("ANALYZE %s after %d rows written (%d rows before)", table, written, before)
    except DatabaseError as exc:
        # Statistics are an optimisation; the data is committed already.
        logger.warning("ANALYZE %s failed: %s", table, exc)


def analyze_all(tables: list[str]) -> None:
    """ANALYZE these tables now (PostgreSQL, unless FHIR_ANALYZE_ROWS is 0): the end of a bulk load."""
    if not settings.FHIR_ANALYZE_ROWS or connection.vendor != "postgresql":
        return
    for table in tables:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        except DatabaseError as exc:
            logger.warning("ANALYZE %s failed: %s", table, exc)
            continue
        with _lock:
            _written[table] = 0
