"""Statements PostgreSQL plans once per connection, for the hottest reads.

Django's psycopg backend binds parameters on the client, so PostgreSQL parses and plans
every statement it is sent; for a read by id that is about as much server time as running
it (issue #14: about 100 us of a 200 us round trip, measured here). The statements a request
always runs (read by id; consent's test of one resource) go through `prepared_cursor`:
psycopg's server-side binding with `prepare=True`, on the request's own pooled connection,
which keeps what it prepared for as long as the connection lives. Everything else stays as
Django sends it.

DATABASE_PREPARED_STATEMENTS=false turns this off, for a PgBouncer in transaction-pooling
mode older than 1.21 (newer ones carry prepared statements with `max_prepared_statements`).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.conf import settings


@cache
def _prepared_class() -> type:
    import psycopg

    class Prepared(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            # Django opens connections with prepare_threshold=None, which makes psycopg ignore
            # prepare=True; lift it for this statement only (a connection serves one thread).
            connection = self.connection
            threshold = connection.prepare_threshold
            connection.prepare_threshold = 0
            try:
                return super().execute(query, params, prepare=True)
            finally:
                connection.prepare_threshold = threshold

    return Prepared


@contextmanager
def prepared_cursor(connection: Any) -> Iterator[Any]:
    """A cursor of `connection` (a Django connection) whose statements PostgreSQL prepares.

    It runs through Django's cursor wrapper, so query timing, counting and error translation
    see it; on SQLite, with DATABASE_PREPARED_STATEMENTS off, or while Django logs each query's
    SQL (DEBUG, a test capturing queries: psycopg keeps no SQL text of a prepared execution
    for it to show) it is a plain cursor."""
    if (connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS
            or connection.queries_logged):
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(_prepared_class()(connection.connection))
    try:
        yield cursor
    finally:
        cursor.close()
