"""Date-sorted pages read in the order of the date index (https://hl7.org/fhir/R4/search.html#sort).

`Observation?category=vital-signs&_sort=-date&_count=10` matches a third of the
Observations of a large database. The general sort (fhir_search.query.paging) gives each
match its sort value by a correlated subquery and sorts them all before the first row comes
out: seconds at a few hundred thousand matches, and far worse after a bulk load, when
PostgreSQL without statistics believes the category matches a handful of rows and starts
from it. So when a search sorts by one date parameter of one resource type and no criterion
looks selective (fhir_search.query.build.driver_of), the page is read the other way round:

- walk the index rows of the parameter in sort order: the (code, resource_type, high) index
  from the top for a descending sort, (code, resource_type, low) from the bottom ascending;
- keep the index row that holds its resource's own sort value (paging.py: the highest end
  descending, the lowest start ascending; the first of equal ones by row id), so a resource
  with several values comes out once;
- test each walked resource against the criteria with per-row probes (Env.fenced) and stop
  when the page is full (LIMIT).

The work follows the page size and how common the matches are, not the size of the
database, and no choice is left to the planner's statistics. Resources without a value sort
last: once the walk runs out, the page goes on with the matches that have no value, in row
id order (the general query; it runs only on the last pages). The cursor is the one of every
sort (paging.Cursor, its key None in the part without values), so the pages are the same
whichever way they are read.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.models import DateTimeField, Exists, F, FilteredRelation, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import OrderBy

from fhir_search.models import DateIndex
from fhir_search.query.build import driver_of, probe
from fhir_search.query.include import ROW_FIELDS
from fhir_search.query.paging import Cursor, key_name, snapshot_bound
from fhir_search.query.parse import SearchRequest, SortKey

KEY = key_name(0)


def applies(request: SearchRequest, compartment: tuple[str, str] | None, restricted: bool) -> bool:
    """Whether the page is read in date-index order: one date sort key on one resource type,
    criteria that are all broad, and no compartment or access rule (they are selective: the
    general query starts from them)."""
    if len(request.sort) != 1 or request.types is None or len(request.types) != 1:
        return False
    if compartment is not None or restricted:
        return False
    key = request.sort[0]
    if key.ptype.on_resource or key.ptype.model is not DateIndex:
        return False
    return driver_of(request.clauses) is None


def page_rows(request: SearchRequest, walked: QuerySet, matched: QuerySet, cursor: Cursor | None,
              limit: int) -> list[tuple]:
    """Up to `limit` rows after (or before, backwards) the cursor, in the order of the
    search, shaped as fhir_search.service.page_query's rows.

    `walked`: the matches with fenced criteria (Env.fenced); `matched`: the same matches as the
    general query builds them (for the part without values).
    """
    key, resource_type = request.sort[0], request.types[0]
    backwards = cursor is not None and cursor.backwards
    among_values = cursor is None or cursor.keys[0] is not None
    valued = _valued(key, resource_type, walked, cursor if among_values else None, backwards, cursor is None)
    valueless = _valueless(key, matched, None if among_values else cursor, backwards, cursor is None)
    # Forwards the values come first; backwards from the part without values, that part first.
    parts = [valued, valueless] if not backwards else [valueless, valued]
    if backwards and among_values:
        parts = [valued]  # before an edge with a value there are only values
    if not backwards and not among_values:
        parts = [valueless]  # after an edge without a value there are only rows without one
    rows: list[tuple] = []
    with _without_jit(connections[walked.db]):  # where the walk runs (maybe a replica)
        for part in parts:
            if rows and cursor is None:  # page one: every part within the first statement's snapshot
                part = part.filter(id__lte=rows[0][-1])
            rows += list(part[: limit - len(rows)])
            if len(rows) >= limit:
                break
    return rows


@contextmanager
def _without_jit(connection: Any) -> Iterator[None]:
    """PostgreSQL: no JIT compilation for the walk. With statistics the planner prices the
    whole walk (its LIMIT stops after a page) above jit_above_cost, and compiling the
    expressions took 50 to 150 ms of a query that reads a page in under 1 ms. Set for the
    transaction fhir_search.query.time_limit opens, and put back like its statement_timeout."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', true)")
        before = cursor.fetchone()[0]
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('jit', %s, true)", [before])


def _fields(first_page: bool) -> list[str]:
    return [*ROW_FIELDS, KEY, *(["snapshot"] if first_page else [])]


def _valued(key: SortKey, resource_type: str, qs: QuerySet, cursor: Cursor | None, backwards: bool,
            first_page: bool) -> QuerySet:
    """The matches with a value, each once, walked in the order of the index."""
    field = key.ptype.sort_field(key.descending)  # "high" descending, "low" ascending
    value = f"sort_row__{field}"
    code = key.param.code
    rows = qs.annotate(sort_row=FilteredRelation(
        "date_values", condition=Q(date_values__code=code, date_values__resource_type=resource_type)))
    # (The subquery below names the joined row through these annotations: an OuterRef to
    # "sort_row__..." would join the table a second time.)
    rows = rows.annotate(**{KEY: F(value)}).alias(sort_row_id=F("sort_row__id")).filter(**{f"{KEY}__isnull": False})
    # The walked row holds the resource's sort value: none of its rows of the code sorts before it.
    ahead = "gt" if key.descending else "lt"
    before = DateIndex.objects.filter(resource_id=OuterRef("pk"), code=code).filter(
        Q(**{f"{field}__{ahead}": OuterRef(KEY)}) | Q(**{field: OuterRef(KEY), "id__lt": OuterRef("sort_row_id")})
    )
    rows = rows.filter(probe(before, False, fenced=True))
    descending = key.descending != backwards
    if cursor is not None:
        edge, last_id = cursor.keys[0], cursor.last_id
        past, reach = ("lt", "lte") if descending else ("gt", "gte")
        # The range bound alone is what the index scan starts from; the OR breaks the ties.
        rows = rows.filter(**{f"{KEY}__{reach}": edge}).filter(
            Q(**{f"{KEY}__{past}": edge}) | Q(**{KEY: edge, "id__lt" if backwards else "id__gt": last_id}))
    if first_page:
        rows = rows.annotate(snapshot=snapshot_bound())
    # NULLS as the index returns them (ascending last, descending first): there are none here,
    # and any other placement would make PostgreSQL sort instead of reading the index in order.
    nulls = {"nulls_first": True} if descending else {"nulls_last": True}
    return rows.order_by(OrderBy(F(KEY), descending=descending, **nulls),
                         OrderBy(F("id"), descending=backwards)).values_list(*_fields(first_page))


def _valueless(key: SortKey, qs: QuerySet, cursor: Cursor | None, backwards: bool, first_page: bool) -> QuerySet:
    """The matches without a value of the sort parameter, in row id order."""
    field = key.ptype.sort_field(key.descending)
    values = DateIndex.objects.filter(resource_id=OuterRef("pk"), code=key.param.code, **{f"{field}__isnull": False})
    rows = qs.filter(~Exists(values)).annotate(**{KEY: Value(None, output_field=DateTimeField())})
    if cursor is not None:
        rows = rows.filter(id__lt=cursor.last_id) if backwards else rows.filter(id__gt=cursor.last_id)
    if first_page:
        rows = rows.annotate(snapshot=snapshot_bound())
    return rows.order_by(OrderBy(F("id"), descending=backwards)).values_list(*_fields(first_page))
