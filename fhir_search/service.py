"""The search service the FHIR API calls: searchset Bundles and conditional-operation matches.

https://hl7.org/fhir/R4/search.html and https://hl7.org/fhir/R4/bundle.html#searchset --
one SELECT over fhir_api_resource reads a page of matches (criteria as EXISTS over the index
tables, sort keys as correlated subqueries, keyset paging; a date sort over broad criteria
walks the date index instead, fhir_search.query.index_order); a count runs only when `_total`
or `_summary=count` asks; includes add one SELECT per round. Stored JSON goes into the
Bundle as `orjson.Fragment`, unparsed, unless `_summary`/`_elements` subset it.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import orjson
from django.db import connection, connections
from django.db.models import Q, QuerySet

from fhir_api.store import jsonio, subsetting
from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
from fhir_api.store.models import Resource
from fhir_search import access, compartments, stored_params
from fhir_search.params import Env
from fhir_search.query.build import any_of, clause_condition, driver_of
from fhir_search.query.include import ROW_FIELDS, Row, included
from fhir_search.query import index_order
from fhir_search.query.paging import Cursor, key_name, ordering, seek, snapshot_bound, sort_expression
from fhir_search.query.parse import SearchRequest, parse_request, parse_types
from fhir_search.query.time_limit import search_time_limit


def matches(
    request: SearchRequest,
    env: Env,
    compartment: tuple[str, str] | None = None,
    every_row: bool = False,
    interaction: str = "s",
) -> QuerySet:
    """Every current resource matching the request, as one (lazy) queryset, narrowed to what
    the current access reaches for `interaction` (fhir_search.access).

    `every_row`: the caller reads all matches (count, sort), see build.driver_of.
    """
    qs = Resource.objects.filter(deleted=False)
    types = request.types
    if types is not None:
        qs = qs.filter(resource_type=types[0]) if len(types) == 1 else qs.filter(resource_type__in=types)
    else:  # a search of every type leaves the audit trail out (`_type=AuditEvent` asks for it)
        qs = qs.exclude(resource_type=AUDIT_TYPE)
    visible = access.condition(types, interaction)
    if visible is not None:
        qs = qs.filter(visible)
    # Fenced criteria (Env.fenced) are all per-row probes: the query is driven by an index order.
    driver = None if env.fenced else driver_of(request.clauses, every_row)
    if compartment is not None:  # one resource's compartment: selective, it drives the query
        comp_type, comp_id = compartment
        qs = qs.filter(any_of([compartments.condition(comp_type, comp_id, t) for t in types or ()]))
        driver = None
    for i, clause in enumerate(request.clauses):
        qs = qs.filter(clause_condition(clause, env, driver=i == driver))
    return qs


def _estimate(qs: QuerySet) -> int:
    """The planner's row estimate on PostgreSQL (no scan); an exact count elsewhere."""
    if connection.vendor != "postgresql":
        return qs.count()
    sql, params = qs.values("id").query.sql_with_params()
    with connections[qs.db].cursor() as cursor:  # where the search itself runs (maybe a replica)
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    url = f"{base}/{path}" if path else base
    return f"{url}?{urlencode(params)}" if params else url


def _entry(base: str, row: Row, mode: str, request: SearchRequest) -> dict[str, Any]:
    summary, elements = request.summary, request.elements
    if (summary and summary != "false") or elements:
        resource: Any = subsetting.apply(jsonio.loads(row.data), summary, elements)
    else:
        resource = orjson.Fragment(row.data)
    return {
        "fullUrl": f"{base}/{row.resource_type}/{row.logical_id}",
        "resource": resource,
        "search": {"mode": mode},
    }


def outcome_entry(messages: list[str]) -> dict[str, Any]:
    """A searchset entry of mode `outcome` listing what the server ignored (search.html#errors)."""
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": m} for m in messages],
        },
        "search": {"mode": "outcome"},
    }


def page_query(request: SearchRequest, qs: QuerySet, cursor: Cursor | None) -> QuerySet:
    """The SELECT of one page (slice it to count + 1): rows, sort keys and, on page one, the snapshot bound.

    Row tuples are (id, resource_type, logical_id, data, sort keys..., [snapshot]).
    """
    page = qs.annotate(**{key_name(i): sort_expression(k) for i, k in enumerate(request.sort)})
    if cursor is not None:
        page = page.filter(seek(request.sort, cursor))
    fields = [*ROW_FIELDS, *(key_name(i) for i in range(len(request.sort)))]
    if cursor is None:
        page = page.annotate(snapshot=snapshot_bound())
        fields.append("snapshot")
    backwards = cursor is not None and cursor.backwards
    return page.order_by(*ordering(request.sort, backwards)).values_list(*fields)


def search_bundle(
    *,
    base: str,
    path: str,
    resource_type: str | None,
    params: list[tuple[str, str]],
    strict: bool = False,
    compartment: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle for a type, system (`_type`) or compartment search.

    `path` is where the links point (e.g. "Patient", "Patient/1/Observation", "" for the
    system base). Every resource query (page, count, chains, `_has`, includes) is narrowed
    to what the current access reaches.
    The database work runs under FHIR_SEARCH_TIMEOUT_MS (400 too-costly beyond).
    """
    stored_params.ensure_current()
    with search_time_limit():
        return _search_bundle(base=base, path=path, resource_type=resource_type, params=params, strict=strict,
                              compartment=compartment)


def _search_bundle(
    *,
    base: str,
    path: str,
    resource_type: str | None,
    params: list[tuple[str, str]],
    strict: bool,
    compartment: tuple[str, str] | None,
) -> dict[str, Any]:
    env = Env(base=base, visible=access.visible_for("s"))
    leading: list[tuple[str, str]] = []
    if resource_type is not None:
        types: tuple[str, ...] | None = (resource_type,)
    elif compartment is not None:
        types = compartments.member_types(compartment[0])
    else:
        types = parse_types(params, strict)
        if types:
            leading.append(("_type", ",".join(types)))
    request = parse_request(types, params, strict=strict, env=env)
    qs = matches(request, env, compartment, every_row=bool(request.sort))
    kept = leading + request.kept

    def counted() -> QuerySet:
        return matches(request, env, compartment, every_row=True)

    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if request.summary == "count" or request.count == 0:
        bundle["total"] = counted().count()
        bundle["link"] = [{"relation": "self", "url": _url(base, path, kept)}]
        if request.ignored:
            bundle["entry"] = [outcome_entry(request.ignored)]
        return bundle

    cursor = Cursor.decode(request.cursor, len(request.sort)) if request.cursor else None
    bounded = Q(id__lte=cursor.bound) if cursor is not None else Q()
    qs = qs.filter(bounded)
    count = request.count
    if index_order.applies(request, compartment, access.condition(request.types, "s") is not None):
        walked = matches(request, replace(env, fenced=True)).filter(bounded)
        rows = index_order.page_rows(request, walked, qs, cursor, count + 1)
    else:
        rows = list(page_query(request, qs, cursor)[: count + 1])
    more = len(rows) > count
    rows = rows[:count]
    backwards = cursor is not None and cursor.backwards
    if backwards:
        rows.reverse()
    bound = cursor.bound if cursor is not None else (rows[0][-1] if rows else 0)
    n_keys = len(request.sort)

    def edge(row: tuple, back: bool) -> str:
        return Cursor(bound, tuple(row[4 : 4 + n_keys]), row[0], back).encode()

    def link(relation: str, token: str | None) -> dict[str, str]:
        return {"relation": relation, "url": _url(base, path, kept + ([("_cursor", token)] if token else []))}

    links = [link("self", request.cursor if cursor else None)]
    has_next = more if not backwards else bool(rows)
    has_previous = cursor is not None and bool(rows) and (more if backwards else True)
    if has_next and rows:
        links.append(link("next", edge(rows[-1], False)))
    if has_previous:
        links.append(link("previous", edge(rows[0], True)))

    if request.total == "accurate":
        bundle["total"] = counted().filter(bounded).count()
    elif request.total == "estimate":
        bundle["total"] = _estimate(counted().filter(bounded))
    elif request.total is None and cursor is None and not more:
        bundle["total"] = len(rows)  # the whole result is on this page: the total is free
    bundle["link"] = links

    found = [Row(*r[:4]) for r in rows]
    entries = [_entry(base, r, "match", request) for r in found]
    if request.includes and found:
        # Included resources are read, so they are narrowed as reads of their own types.
        extra = included(found, request.includes, access.condition(None, "r"))
        entries.extend(_entry(base, r, "include", request) for r in extra)
    if request.ignored:
        entries.append(outcome_entry(request.ignored))
    if entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = entries
    return bundle


def match(resource_type: str, params: list[tuple[str, str]], limit: int = 2, interaction: str = "s") -> list[str]:
    """Logical ids of resources matching a conditional create/update/delete (strict parsing),
    among those the current access reaches for `interaction`."""
    from django.conf import settings

    stored_params.ensure_current()
    env = Env(base=settings.FHIR_BASE_URL, visible=access.visible_for("s"))
    request = parse_request((resource_type,), params, strict=True, env=env)
    qs = matches(request, env, interaction=interaction)
    return list(qs.order_by("id").values_list("logical_id", flat=True)[:limit])
