"""Index rows for resources: what each search parameter finds in them.

https://hl7.org/fhir/R4/search.html -- `index_resource` replaces all index rows of one
resource (called by the receiver of `resource_written`, inside the writer's transaction),
`index_many` does the same for a batch with one DELETE and one INSERT per table (bulk
loads and `manage.py reindex`, where no signal is sent). A deleted resource has no rows,
so it never matches a search.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from typing import Any

from django.db import connection, models

from fhir_api.store import statistics
from fhir_api.store.models import Resource
from fhir_search.extraction import Context, extractor
from fhir_search.models import (
    CompositeIndex,
    DateIndex,
    FullTextIndex,
    NumberIndex,
    PositionIndex,
    QuantityIndex,
    ReferenceIndex,
    StringIndex,
    TokenIndex,
    UriIndex,
)
from fhir_search.params import param_type
from fhir_search.params.text import documents
from fhir_search.registry import SearchParam, registry

logger = logging.getLogger(__name__)

TABLES: tuple[type[models.Model], ...] = (
    StringIndex, TokenIndex, DateIndex, NumberIndex, QuantityIndex, ReferenceIndex, UriIndex, CompositeIndex,
    FullTextIndex, PositionIndex,
)
BATCH = 1000


@cache
def _indexed_params(resource_type: str) -> tuple[tuple[SearchParam, Any], ...]:
    """(parameter, type module) of every parameter of a type that has index rows."""
    out = []
    for param in registry().for_type(resource_type).values():
        ptype = param_type(param)
        if ptype is None or ptype.on_resource or ptype.model is None:
            continue
        if not param.expression_for(resource_type):
            continue
        out.append((param, ptype))
    return tuple(out)


def forget_type(resource_type: str | None = None) -> None:
    """Recompute which parameters a type indexes (after a SearchParameter changes)."""
    _indexed_params.cache_clear()


def rows_for(
    resource: Resource, content: dict[str, Any] | None
) -> dict[type[models.Model], list[dict[str, Any]]]:
    """The index rows of one resource version as column dicts, grouped by table.

    Plain dicts, not model instances: a large transaction makes tens of thousands of rows
    and a model's __init__ would cost more than extracting the values did.
    """
    out: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
    if content is None or resource.deleted:
        return out
    rtype = resource.resource_type
    context = Context(content)
    for param, ptype in _indexed_params(rtype):
        try:
            seen = set()
            for typed in extractor(param, rtype)(context, None):
                for cols in ptype.rows(param, typed, context):
                    key = tuple(cols.items())
                    if key in seen:
                        continue
                    seen.add(key)
                    cols.update(resource_id=resource.pk, resource_type=rtype, code=param.code)
                    out[ptype.model].append(cols)
        except Exception:  # noqa: BLE001 -- one odd value must not stop the write
            logger.warning("could not index %s of %s/%s", param.code, rtype, resource.logical_id,
                           exc_info=True)
    # _text and _content (every type): one row each, see fhir_search.params.text
    for code, text in documents(content).items():
        out[FullTextIndex].append({"resource_id": resource.pk, "resource_type": rtype, "code": code, "text": text})
    return out


def _tables_of(resource_type: str) -> set[type[models.Model]]:
    return {ptype.model for _, ptype in _indexed_params(resource_type)} | {FullTextIndex}


def index_resource(resource: Resource, content: dict[str, Any] | None) -> None:
    """Replace the index rows of one resource (content None: a deletion, no rows)."""
    if resource.version_id > 1:  # a first version has no rows to replace yet
        for table in _tables_of(resource.resource_type):
            table.objects.filter(resource_id=resource.pk).delete()
    for table, rows in rows_for(resource, content).items():
        insert_rows(table, rows)


def insert_rows(table: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """Insert index rows (column dicts): COPY on PostgreSQL, bulk INSERT elsewhere.

    COPY streams the values through psycopg's C encoder; a multi-row INSERT would have
    psycopg quote every parameter in Python (the biggest cost of a large transaction).
    """
    if not rows:
        return
    statistics.note_written(table._meta.db_table, len(rows))
    if connection.vendor != "postgresql":
        table.objects.bulk_create([table(**row) for row in rows], batch_size=BATCH)
        return
    fields = _copy_fields(table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {connection.ops.quote_name(table._meta.db_table)} ({columns}) FROM STDIN"
    names = [f.attname for f in fields]
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row.get(name) for name in names])


@cache
def _copy_fields(table: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(f for f in table._meta.concrete_fields if not f.primary_key)


def index_many(items: Iterable[tuple[Resource, dict[str, Any] | None]], *, just_written: bool = False) -> int:
    """Replace the index rows of many resources: one DELETE and one INSERT per table.

    `just_written`: the versions were written in this transaction (the bulk-write signal),
    so first versions have no rows yet and need no DELETE. Returns the number of rows written.
    """
    items = list(items)
    if not items:
        return 0
    old = [resource for resource, _ in items if not just_written or resource.version_id > 1]
    if old:
        ids = [resource.pk for resource in old]
        for table in set().union(*(_tables_of(resource.resource_type) for resource in old)):
            table.objects.filter(resource_id__in=ids).delete()
    grouped: dict[type[models.Model], list[models.Model]] = defaultdict(list)
    for resource, content in items:
        for table, rows in rows_for(resource, content).items():
            grouped[table].extend(rows)
    written = 0
    for table, rows in grouped.items():
        insert_rows(table, rows)
        written += len(rows)
    return written
