"""The read ceiling: the least a Python WSGI app can do to serve a stored resource by id.

No Django, no routing table, no middleware: split the path, run one prepared SELECT on a
plain psycopg connection, send the stored JSON with the same headers our read sends
(Content-Type, ETag, Last-Modified). It reads the FHIR server's own table
(fhir_api_resource), so both answer the same bytes. One connection per worker thread
(per worker with sync workers), opened on first use and kept.

    DATABASE_URL=postgres://root@127.0.0.1:5432/fhir_bench gunicorn bench.ceiling_app:application
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from email.utils import formatdate

import psycopg

QUERY = (
    "SELECT data, version_id, last_updated, deleted FROM fhir_api_resource "
    "WHERE resource_type = %s AND logical_id = %s"
)
_NOT_FOUND = ("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])


def make_app(conninfo: str) -> Callable:
    """The WSGI app reading from the database at `conninfo` (a URL or key=value string)."""
    local = threading.local()

    def connection() -> psycopg.Connection:
        conn = getattr(local, "conn", None)
        if conn is None or conn.closed:
            conn = local.conn = psycopg.connect(conninfo, autocommit=True)
        return conn

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        parts = environ.get("PATH_INFO", "").split("/")  # ["", "fhir", type, id]
        if environ.get("REQUEST_METHOD") != "GET" or len(parts) != 4 or parts[1] != "fhir":
            start_response(*_NOT_FOUND)
            return [b""]
        row = connection().execute(QUERY, (parts[2], parts[3]), prepare=True).fetchone()
        if row is None or row[3]:
            start_response(*_NOT_FOUND)
            return [b""]
        body = row[0].encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/fhir+json; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("ETag", f'W/"{row[1]}"'),
                ("Last-Modified", formatdate(row[2].timestamp(), usegmt=True)),
            ],
        )
        return [body]

    return application


application = make_app(os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/fhir_bench"))
