"""The write ceiling: PostgreSQL's COPY of the same resources' JSON into a bare table.

What the database alone can take in, with no HTTP, no validation, no versions and no search
index: one connection streaming rows (type, id, JSON text) through COPY in one transaction.
Our ingest figure is reported as a fraction of this. The rows are the generated resources,
cycled up to 100k rows so the figure does not depend on a few milliseconds; the same COPY
into a `jsonb` column (PostgreSQL parses every document) is reported alongside.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
import psycopg

TABLE = "bench_copy_ceiling"


def copy_rows(bundles: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(type, id, JSON text) of every resource of the bundles, encoded before timing."""
    rows = []
    for bundle in bundles:
        for entry in bundle["entry"]:
            resource = entry["resource"]
            rows.append((resource["resourceType"], str(uuid.uuid4()), orjson.dumps(resource).decode()))
    return rows


def copy_ceiling(
    database_url: str, rows: list[tuple[str, str, str]], *, minimum: int = 100_000, column: str = "text"
) -> dict[str, Any]:
    """Rows/s of one COPY of `rows` (cycled up to `minimum`, so the timing is not noise)."""
    data = list(itertools.islice(itertools.cycle(rows), max(len(rows), minimum))) if rows else []
    with psycopg.connect(database_url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(
            f"CREATE TABLE {TABLE} (resource_type text NOT NULL, logical_id text NOT NULL, "
            f"data {column} NOT NULL)"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(f"COPY {TABLE} (resource_type, logical_id, data) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute(f"DROP TABLE {TABLE}")
        conn.commit()
    megabytes = sum(len(r[2]) for r in data) / 1e6
    return {
        "name": f"ceiling: PostgreSQL COPY into a bare table ({column} column)",
        "resources": len(data),
        "distinct_resources": len(rows),
        "seconds": round(seconds, 3),
        "resources_per_s": round(len(data) / seconds, 1),
        "megabytes": round(megabytes, 1),
        "mb_per_s": round(megabytes / seconds, 1),
    }
