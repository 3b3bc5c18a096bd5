"""`Observation/$lastn`: the latest `max` Observations per code, as one SQL query over the index.

https://hl7.org/fhir/R4/observation-operation-lastn.html -- the Observation search
parameters select (`patient`, `subject`, `category`, `code`, `date`, ... and anything else
search takes); the matches are grouped by code (each coding of Observation.code, as the
`code` token index holds it) and the `max` (default 1) most recent of each group, by the
`date` index (effective[x]) and then by id, are returned newest first within their group,
groups in code order. An Observation whose code has several codings may lead two groups; it
appears once, in the first.

The ranking is a window function (`ROW_NUMBER() OVER (PARTITION BY system, code ORDER BY
date DESC)`) over the token index rows of the matches, so the database does it in one
statement, on SQLite and PostgreSQL alike, however many codes there are.
"""
from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.db.models import F, OuterRef, Subquery, Window
from django.db.models.functions import RowNumber

from fhir_api.store.errors import BadRequest
from fhir_search import access, stored_params
from fhir_search.models import DateIndex, TokenIndex
from fhir_search.params import Env
from fhir_search.query.parse import parse_request
from fhir_search.query.time_limit import search_time_limit
from fhir_search.service import matches, outcome_entry

# What $lastn reads itself; everything else is a search parameter of Observation.
OWN = ("max",)
# Paging and result shaping do not apply: the answer is the latest of each group.
REFUSED = ("_sort", "_count", "_cursor", "_total", "_include", "_revinclude", "_summary", "_elements")


def parse_max(values: list[str]) -> int:
    if not values:
        return 1
    if len(values) > 1:
        raise BadRequest("$lastn takes one max")
    raw = values[0].strip()
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"$lastn: max must be a positive integer, not {values[0]!r}")
    return min(int(raw), settings.FHIR_MAX_COUNT)


def latest_query(params: list[tuple[str, str]], most: int, *, base: str, strict: bool = False) -> tuple[Any, Any]:
    """(the parsed search, the one statement ranking its matches): rows of (pk, id, JSON)."""
    search = [(k, v) for k, v in params if k not in OWN]
    env = Env(base=base, visible=access.visible_for("s"))
    request = parse_request(("Observation",), search, strict=strict, env=env)
    found = matches(request, env, every_row=True)
    latest = DateIndex.objects.filter(resource=OuterRef("resource_id"), code="date").order_by(F("low").desc(
        nulls_last=True)).values("low")[:1]
    ranked = (
        TokenIndex.objects.filter(code="code", resource_type="Observation", resource_id__in=found.values("id"))
        .annotate(when=Subquery(latest))
        .annotate(rank=Window(RowNumber(), partition_by=[F("system"), F("value")],
                              order_by=[F("when").desc(nulls_last=True), F("resource_id").desc()]))
        .filter(rank__lte=most)
        .order_by(F("system").asc(nulls_first=True), F("value").asc(nulls_first=True), "rank")
        .values_list("resource_id", "resource__logical_id", "resource__data")
    )
    return request, ranked


def lastn_bundle(*, base: str, params: list[tuple[str, str]], strict: bool = False) -> dict[str, Any]:
    """A searchset Bundle of the latest `max` Observations per code among the matches."""
    stored_params.ensure_current()
    most = parse_max([v for k, v in params if k == "max"])
    for name, _ in params:
        if name.split(":", 1)[0] in REFUSED:
            raise BadRequest(f"$lastn does not take {name}: it answers the latest of each code in one Bundle")
    with search_time_limit():
        request, ranked = latest_query(params, most, base=base, strict=strict)
        # The cap keeps an unfiltered $lastn over a large server from building a huge answer.
        limit = settings.FHIR_MAX_COUNT
        rows = list(ranked[: limit * 4 + 1])
    seen: set[int] = set()
    entries: list[dict[str, Any]] = []
    truncated = False
    for pk, logical_id, data in rows:
        if pk in seen:
            continue
        if len(entries) == limit:
            truncated = True
            break
        seen.add(pk)
        entries.append({"fullUrl": f"{base}/Observation/{logical_id}", "resource": orjson.Fragment(data),
                        "search": {"mode": "match"}})
    notes = list(request.ignored)
    if truncated or len(rows) > limit * 4:
        notes.append(f"more than {limit} Observations (FHIR_MAX_COUNT) are the latest of their codes; only the "
                     "first are returned: narrow the search (patient, category, code)")
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
    if notes:
        bundle.pop("total")
        entries.append(outcome_entry(notes))
    if entries:
        bundle["entry"] = entries
    return bundle
