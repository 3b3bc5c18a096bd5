"""`$everything` of a patient or an encounter: its compartment and what that refers to.

https://hl7.org/fhir/R4/patient-operation-everything.html and
https://hl7.org/fhir/R4/encounter-operation-everything.html -- `Patient/[id]/$everything`,
`Patient/$everything` (every patient) and `Encounter/[id]/$everything` answer a searchset
Bundle of:

- matches: the focus resource(s) and every resource in their compartment, i.e. whose
  compartment parameters (CompartmentDefinition, `fhir_search.compartments`) refer to them;
- includes: the resources those matches refer to (practitioners, organizations, locations,
  medications...), one level deep, through the reference index (so references that some
  reference search parameter covers).

Each page is one SELECT over fhir_api_resource whose `id IN (reference-index rows pointing at
the focus with a compartment parameter of their type UNION the focus itself)`, in Resource.id
order with a keyset cursor and the snapshot bound of search paging, so following `next`
links walks every match exactly once. Includes are read per page (two small queries) and
each appears on the page of the first match that refers to it, never again; a resource that
is itself a match is only ever a match.

Parameters: `_type` (matches and includes of those types only), `_since` (matches whose
meta.lastUpdated is at or after it), `start`/`end` (Patient only: matches whose care date,
see fhir_search.care_dates, overlaps [start, end]; resources with no care-date value, and types that have
no such parameter, are kept, since nothing says they fall outside), `_count` (page size,
default and maximum FHIR_MAX_COUNT: the spec prefers one Bundle, memory prefers pages).
`_since` and `start`/`end` select matches only: what a returned match refers to comes with
it, so the page can be read on its own. Other parameters are ignored and reported in an
OperationOutcome entry (or refused under `Prefer: handling=strict`); `_offset` is one of
them: follow the `next` links.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import HttpResponse

from fhir_api.store import repository
from fhir_api.store.datetimes import parse_instant, parse_range
from fhir_api.store.errors import BadRequest
from fhir_api.store.models import Resource
from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import base_url, bundle_body
from fhir_api.store.structure import resource_types
from fhir_api.rest.views.base import prefer
from fhir_search import access, compartments
from fhir_search.care_dates import care_date_param
from fhir_search.models import DateIndex, ReferenceIndex
from fhir_search.query.build import any_of
from fhir_search.query.include import ROW_FIELDS, Row
from fhir_search.query.paging import Cursor
from fhir_search.service import outcome_entry

_KNOWN = {
    "Patient": ("start", "end", "_since", "_type", "_count", "_cursor"),
    "Encounter": ("_since", "_type", "_count", "_cursor"),
}


@dataclass(frozen=True)
class _Ask:
    """One $everything request, parsed."""

    compartment: str  # "Patient" or "Encounter"
    focus: str | None  # the logical id; None: every resource of the compartment type
    types: tuple[str, ...] | None  # `_type`; None: all
    since: datetime | None
    care: tuple[datetime | None, datetime | None] | None  # [start, end) from start/end
    count: int
    cursor: Cursor | None
    token: str | None  # the cursor as the client sent it
    kept: list[tuple[str, str]]  # the parameters the links repeat
    ignored: list[str]


def _simple(invocation: Invocation, name: str) -> list[str]:
    out = []
    for value in invocation.values(name):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise BadRequest(f"$everything parameter {name} takes a simple value")
        out.append(str(value))
    return out


def _one(invocation: Invocation, name: str) -> str | None:
    values = _simple(invocation, name)
    if len(values) > 1:
        raise BadRequest(f"$everything takes at most one {name}")
    return values[0] if values else None


def _parse(invocation: Invocation, compartment: str) -> _Ask:
    known = _KNOWN[compartment]
    kept: list[tuple[str, str]] = []
    unknown = dict.fromkeys(p.get("name") for p in invocation.parameters.get("parameter", [])
                            if p.get("name") not in known)
    ignored = [f"parameter {name!r} is not supported by $everything"
               + (": follow the next links to page" if name == "_offset" else "") for name in unknown]
    if ignored and prefer(invocation.request, "handling") == "strict":
        raise BadRequest("; ".join(ignored))

    types: list[str] = []
    for raw in _simple(invocation, "_type"):
        for t in (s.strip() for s in raw.split(",")):
            if t and t not in resource_types():
                raise BadRequest(f"_type: unknown resource type {t!r}")
            if t and t not in types:
                types.append(t)
    if types:
        kept.append(("_type", ",".join(types)))
    try:
        since_raw = _one(invocation, "_since")
        since = parse_instant(since_raw) if since_raw else None
        start_raw, end_raw = _one(invocation, "start"), _one(invocation, "end")
        care = None
        if start_raw or end_raw:
            care = (parse_range(start_raw)[0] if start_raw else None, parse_range(end_raw)[1] if end_raw else None)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    for name, raw in (("start", start_raw), ("end", end_raw), ("_since", since_raw)):
        if raw:
            kept.append((name, raw))
    count_raw = _one(invocation, "_count")
    if count_raw is None:
        count = settings.FHIR_MAX_COUNT
    elif isinstance(count_raw, str) and count_raw.isascii() and count_raw.isdigit():
        count = settings.FHIR_MAX_COUNT if len(count_raw) > 9 else min(int(count_raw), settings.FHIR_MAX_COUNT)
        kept.append(("_count", str(count)))
    else:
        raise BadRequest(f"_count={count_raw} is not a non-negative integer")
    token = _one(invocation, "_cursor")
    cursor = Cursor.decode(token, 0) if token else None
    return _Ask(compartment, invocation.logical_id, tuple(types) or None, since, care, count, cursor, token,
                kept, ignored)


# -- the SQL ---------------------------------------------------------------------------------


def _links(ask: _Ask) -> QuerySet:
    """Reference-index rows that put a resource in the compartment (of one focus, or of any)."""
    types_by_code: dict[str, list[str]] = defaultdict(list)
    for rtype in compartments.member_types(ask.compartment):
        if ask.types is None or rtype in ask.types:
            for code in compartments.member_params(ask.compartment, rtype):
                types_by_code[code].append(rtype)
    rows = ReferenceIndex.objects.filter(target_type=ask.compartment)
    if ask.focus is not None:
        rows = rows.filter(target_id=ask.focus)
    return rows.filter(any_of([Q(code=c, resource_type__in=ts) for c, ts in sorted(types_by_code.items())]))


def _focus(ask: _Ask) -> Q:
    if ask.types is not None and ask.compartment not in ask.types:
        return Q(pk__in=[])
    q = Q(resource_type=ask.compartment)
    return q & Q(logical_id=ask.focus) if ask.focus is not None else q


def _care_condition(ask: _Ask) -> Q:
    """Members whose care date overlaps [start, end), or that have none."""
    assert ask.care is not None
    low, high = ask.care
    overlap = Q()
    if low is not None:
        overlap &= Q(high__gt=low) | Q(high__isnull=True)
    if high is not None:
        overlap &= Q(low__lt=high) | Q(low__isnull=True)
    by_code: dict[str | None, list[str]] = defaultdict(list)
    for rtype in compartments.member_types(ask.compartment):
        if ask.types is None or rtype in ask.types:
            by_code[care_date_param(rtype)].append(rtype)
    undated = by_code.pop(None, [])
    parts = [Q(resource_type__in=undated)] if undated else []
    for code, types in sorted(by_code.items()):
        values = DateIndex.objects.filter(resource_id=OuterRef("pk"), code=code)
        parts.append(Q(resource_type__in=types) & (Exists(values.filter(overlap)) | ~Exists(values)))
    return any_of(parts)


def _filters(ask: _Ask) -> Q:
    """What a member must also satisfy to be a match: `_type`, `_since`, `start`/`end`."""
    q = Q(deleted=False)
    if ask.types is not None:
        q &= Q(resource_type__in=ask.types)
    if ask.since is not None:
        q &= Q(last_updated__gte=ask.since)
    if ask.care is not None:
        q &= _care_condition(ask)
    visible = access.condition(tuple(ask.types) if ask.types is not None else None, "r")
    if visible is not None:  # the token's reach (fhir_search.access), part of the same SQL
        q &= visible
    return q


def _matches(ask: _Ask, after: int | None = None, upto: int | None = None) -> QuerySet:
    """Every match (with after < id <= upto), lazily, as one SELECT.

    One patient or encounter: `id IN (its compartment's index rows UNION itself)`, driven by
    the reference index, never a table scan. Every patient (`Patient/$everything`): most
    resources are in some patient's compartment, so the page walks fhir_api_resource in id
    order and probes each row's index rows, stopping at the page size instead of collecting
    every compartment link of the database on each page.
    """
    window = Q()
    if after is not None:
        window &= Q(id__gt=after)
    if upto is not None:
        window &= Q(id__lte=upto)
    if ask.focus is None:
        member = Exists(_links(ask).filter(resource_id=OuterRef("pk"))) | _focus(ask)
        return Resource.objects.filter(window).filter(member).filter(_filters(ask))
    links = _links(ask)
    if after is not None:  # the cursor, in both arms: the union holds what is left to walk
        links = links.filter(resource_id__gt=after)
    ids = links.values("resource_id").union(Resource.objects.filter(_focus(ask)).values("id"))
    return Resource.objects.filter(window, pk__in=ids).filter(_filters(ask))


def _match_condition(ask: _Ask) -> Q:
    """Is this Resource row (correlated) a match? The include query leaves matches out."""
    member = Exists(_links(ask).filter(resource_id=OuterRef("pk"))) | _focus(ask)
    return member & _filters(ask)


def _page(ask: _Ask) -> tuple[list[Row], bool, int]:
    """One page of matches: (rows, more after it, snapshot bound)."""
    fields = list(ROW_FIELDS)
    if ask.cursor is not None:
        qs = _matches(ask, ask.cursor.last_id, ask.cursor.bound)
    else:
        qs = _matches(ask)
        # The snapshot bound, read in the same statement: resources created after page one
        # are not part of this walk (fhir_search.query.paging).
        qs = qs.annotate(snapshot=Subquery(Resource.objects.order_by("-id").values("id")[:1]))
        fields.append("snapshot")
    rows = list(qs.order_by("id").values_list(*fields)[: ask.count + 1])
    more = len(rows) > ask.count
    rows = rows[: ask.count]
    if ask.cursor is not None:
        bound = ask.cursor.bound
    else:
        bound = rows[0][-1] if rows else 0
    return [Row(*r[:4]) for r in rows], more, bound


def _included(ask: _Ask, page: list[Row], bound: int) -> tuple[list[Row], bool]:
    """What the page's matches refer to, minus matches and what an earlier page included."""
    limit = settings.FHIR_MAX_INCLUDE
    refs = ReferenceIndex.objects.filter(
        resource_id__in=[r.pk for r in page], target_type__isnull=False, target_id__isnull=False
    )
    if ask.types is not None:
        refs = refs.filter(target_type__in=ask.types)
    pairs = set(refs.values_list("target_type", "target_id").distinct()[: limit + 1])
    truncated = len(pairs) > limit
    if not pairs:
        return [], False

    def targets(which: set[tuple[str, str]], type_field: str, id_field: str) -> Q:
        by_type: dict[str, list[str]] = defaultdict(list)
        for target_type, target_id in which:
            by_type[target_type].append(target_id)
        return any_of([Q(**{type_field: t, f"{id_field}__in": ids}) for t, ids in sorted(by_type.items())])

    if ask.cursor is not None:
        # The matches of earlier pages are those with a smaller id (within the snapshot);
        # what one of them refers to was included there.
        earlier = _matches(ask, upto=min(page[0].pk - 1, bound)).values("id")
        seen = ReferenceIndex.objects.filter(targets(pairs, "target_type", "target_id"), resource_id__in=earlier)
        pairs -= set(seen.values_list("target_type", "target_id").distinct())
    if not pairs:
        return [], truncated
    qs = (
        Resource.objects.filter(deleted=False)
        .filter(targets(pairs, "resource_type", "logical_id"))
        .exclude(_match_condition(ask))
    )
    visible = access.condition(None, "r")
    if visible is not None:
        qs = qs.filter(visible)
    return [Row(*r) for r in qs.order_by("id").values_list(*ROW_FIELDS)[:limit]], truncated


# -- the Bundle ------------------------------------------------------------------------------


def _entry(base: str, row: Row, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{row.resource_type}/{row.logical_id}",
        "resource": orjson.Fragment(row.data),
        "search": {"mode": mode},
    }


def _url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    return f"{base}/{path}?{urlencode(params)}" if params else f"{base}/{path}"


def _everything(invocation: Invocation, compartment: str) -> HttpResponse:
    ask = _parse(invocation, compartment)
    if ask.focus is not None:
        repository.check_id(ask.focus)
        repository.read(compartment, ask.focus)  # 404 unknown, 410 deleted
    base = base_url(invocation.request)
    path = f"{compartment}/{ask.focus}/$everything" if ask.focus is not None else f"{compartment}/$everything"
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    notes = list(ask.ignored)
    if ask.count == 0:
        bundle["total"] = _matches(ask).count()
        bundle["link"] = [{"relation": "self", "url": _url(base, path, ask.kept)}]
        if notes:
            bundle["entry"] = [outcome_entry(notes)]
        return bundle_body(invocation.request, bundle)

    page, more, bound = _page(ask)
    included, truncated = _included(ask, page, bound) if page else ([], False)
    if truncated:
        notes.append(f"this page refers to more than {settings.FHIR_MAX_INCLUDE} resources; only the first "
                     "are included")
    links = [{"relation": "self", "url": _url(base, path, ask.kept + ([("_cursor", ask.token)] if ask.token else []))}]
    if more:
        token = Cursor(bound, (), page[-1].pk, False).encode()
        links.append({"relation": "next", "url": _url(base, path, ask.kept + [("_cursor", token)])})
    if ask.cursor is None and not more:
        bundle["total"] = len(page)  # the whole result is on this page
    bundle["link"] = links
    entries = [_entry(base, r, "match") for r in page] + [_entry(base, r, "include") for r in included]
    if notes:
        entries.append(outcome_entry(notes))
    if entries:
        bundle["entry"] = entries
    return bundle_body(invocation.request, bundle)


@operation("everything", levels=("type", "instance"), types=("Patient",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/Patient-everything")
def patient_everything(invocation: Invocation) -> HttpResponse:
    return _everything(invocation, "Patient")


@operation("everything", levels=("instance",), types=("Encounter",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/Encounter-everything")
def encounter_everything(invocation: Invocation) -> HttpResponse:
    return _everything(invocation, "Encounter")
