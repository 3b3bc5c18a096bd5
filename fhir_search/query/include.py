"""`_include` and `_revinclude` (https://hl7.org/fhir/R4/search.html#include).

After the page of matches is read, one query per round fetches what they refer to
(`_include=Observation:patient`) or what refers to them (`_revinclude=Provenance:target`);
`:iterate` directives run again on what the previous round added, up to MAX_ROUNDS.
`_revinclude=*` adds whatever refers to a match through any reference parameter (any
source type, any code: the reference index's (target_type, target_id, code) index).
Each round reads the reference index (the targets of the page's references) and then
fhir_api_resource, at most the include limit of rows.
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from django.conf import settings
from django.db.models import Q

from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
from fhir_api.store.models import Resource
from fhir_search.models import ReferenceIndex
from fhir_search.query.build import any_of
from fhir_search.query.parse import Include

MAX_ROUNDS = 4


class Row(NamedTuple):
    pk: int
    resource_type: str
    logical_id: str
    data: str


ROW_FIELDS = ("id", "resource_type", "logical_id", "data")


def _limit() -> int:
    return settings.FHIR_MAX_INCLUDE


def _pointing_at(include: Include, current: list[Row]) -> Q | None:
    """_revinclude: rows of include.source (any type for `*`) whose reference rows point at one of `current`."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for row in current:
        if include.target is None or row.resource_type == include.target:
            by_type[row.resource_type].append(row.logical_id)
    if not by_type:
        return None
    pointing = ReferenceIndex.objects.filter(any_of([Q(target_type=t, target_id__in=ids) for t, ids in by_type.items()]))
    if include.source is None:  # _revinclude=*: any source type, any code (the reference_target index)
        # ... but not the audit trail, which refers to nearly everything (ask for it by name).
        return Q(pk__in=pointing.exclude(resource_type=AUDIT_TYPE).values("resource_id"))
    pointing = pointing.filter(resource_type=include.source)
    if include.params:
        pointing = pointing.filter(code__in=[p.code for p in include.params])
    return Q(resource_type=include.source, pk__in=pointing.values("resource_id"))


def _references_of(include: Include, current: list[Row]) -> Q | None:
    """_include: the reference rows of the `current` rows of include.source."""
    sources = [row.pk for row in current if row.resource_type == include.source]
    if not sources:
        return None
    q = Q(resource_id__in=sources, target_id__isnull=False)
    if include.params:
        q &= Q(code__in=[p.code for p in include.params])
    if include.target:
        q &= Q(target_type=include.target)
    return q


def _referenced(conditions: list[Q], limit: int) -> Q | None:
    """The resources some reference rows point at.

    Read in two steps (the (type, id) pairs, then the resources by their unique index)
    because a join on (type, id) is not a foreign key the ORM can follow, and a correlated
    EXISTS would make SQLite test every resource row.
    """
    pairs = (
        ReferenceIndex.objects.filter(any_of(conditions))
        .values_list("target_type", "target_id")
        .distinct()[:limit]
    )
    by_type: dict[str, list[str]] = defaultdict(list)
    for target_type, target_id in pairs:
        by_type[target_type].append(target_id)
    if not by_type:
        return None
    return any_of([Q(resource_type=t, logical_id__in=ids) for t, ids in by_type.items()])


def included(
    matches: list[Row], includes: list[Include], visible: Q | None = None
) -> list[Row]:
    """The resources the directives add to a page of matches, each once, matches excluded."""
    seen = {r.pk for r in matches}
    out: list[Row] = []
    current = matches
    for round_no in range(MAX_ROUNDS):
        directives = includes if round_no == 0 else [i for i in includes if i.iterate]
        room = _limit() - len(out)
        if room <= 0:
            break
        conditions = [c for i in directives if i.reverse and (c := _pointing_at(i, current)) is not None]
        forward = [c for i in directives if not i.reverse and (c := _references_of(i, current)) is not None]
        if forward and (referenced := _referenced(forward, room + len(seen))) is not None:
            conditions.append(referenced)
        if not conditions:
            break
        qs = Resource.objects.filter(deleted=False).filter(any_of(conditions)).exclude(pk__in=seen)
        if visible is not None:  # the access filter: what the token may read
            qs = qs.filter(visible)
        current = [Row(*r) for r in qs.order_by("id").values_list(*ROW_FIELDS)[:room]]
        if not current:
            break
        seen.update(r.pk for r in current)
        out.extend(current)
    return out
