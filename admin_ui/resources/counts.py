"""How many resources of each type there are, without counting the table on every page view.

On PostgreSQL the planner's statistics already know: `reltuples` (rows in the table, kept by
ANALYZE and autovacuum, and by fhir_api.store.statistics after large writes) times each type's
share of `resource_type` in pg_stats. The few types rare enough to be missing from the
most-common-values list are counted exactly, each count stopped at RARE_LIMIT rows through the
(type, last updated) index. A table never analysed has no statistics: every type present is
then counted that way. The embedded SQLite database is small by design and counted exactly.
Counts include deleted resources' tombstones (one row each), so they are shown as estimates.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count

from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
from fhir_api.store.models import Resource

RARE_LIMIT = 10_000


@dataclass(frozen=True)
class TypeCount:
    resource_type: str
    count: int
    estimated: bool  # from statistics
    at_least: bool = False  # the bounded count stopped: there are more


def counts() -> list[TypeCount]:
    """Resources per type, largest first; the audit trail (not clinical data, and the largest
    table of a busy server) is left to its own page."""
    found = _postgres_counts() if connection.vendor == "postgresql" else _exact_counts()
    return sorted(found, key=lambda c: (-c.count, c.resource_type))


def _exact_counts() -> list[TypeCount]:
    rows = Resource.objects.exclude(resource_type=AUDIT_TYPE).values("resource_type").annotate(n=Count("id")).order_by()
    return [TypeCount(r["resource_type"], r["n"], False) for r in rows]


_TABLE = Resource._meta.db_table

# Each type present, found by skipping through the (resource_type, last_updated) index: one
# probe per type instead of a scan of every row.
_TYPES_PRESENT = f"""
WITH RECURSIVE present(t) AS (
    (SELECT resource_type FROM {_TABLE} ORDER BY resource_type LIMIT 1)
    UNION ALL
    SELECT (SELECT resource_type FROM {_TABLE} WHERE resource_type > present.t ORDER BY resource_type LIMIT 1)
    FROM present WHERE present.t IS NOT NULL
)
SELECT t FROM present WHERE t IS NOT NULL
"""

_STATISTICS = """
SELECT c.reltuples, s.most_common_vals::text, s.most_common_freqs
FROM pg_class c LEFT JOIN pg_stats s
  ON s.schemaname = current_schema() AND s.tablename = c.relname AND s.attname = 'resource_type'
WHERE c.oid = to_regclass(%s)
"""


def _bounded_count(cursor, resource_type: str) -> TypeCount:
    cursor.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {_TABLE} WHERE resource_type = %s LIMIT %s) AS bounded",
        [resource_type, RARE_LIMIT + 1],
    )
    n = cursor.fetchone()[0]
    return TypeCount(resource_type, min(n, RARE_LIMIT), False, at_least=n > RARE_LIMIT)


def _postgres_counts() -> list[TypeCount]:
    with connection.cursor() as cursor:
        cursor.execute(_STATISTICS, [_TABLE])
        row = cursor.fetchone()
        reltuples, values_text, freqs = row if row else (-1, None, None)
        estimated: dict[str, int] = {}
        if reltuples and reltuples > 0 and values_text and freqs:
            values = _pg_array(values_text)
            estimated = {v: round(reltuples * f) for v, f in zip(values, freqs, strict=False)}
        cursor.execute(_TYPES_PRESENT)
        present = [r[0] for r in cursor.fetchall() if r[0] != AUDIT_TYPE]
        out = []
        for resource_type in present:
            if resource_type in estimated:
                out.append(TypeCount(resource_type, estimated[resource_type], True))
            else:
                out.append(_bounded_count(cursor, resource_type))
        return out


def _pg_array(text: str) -> list[str]:
    """most_common_vals as text ('{Observation,Patient}'): resource type names never need quoting."""
    return [v.strip('"') for v in text.strip("{}").split(",") if v]
