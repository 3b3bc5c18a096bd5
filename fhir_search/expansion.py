"""Value set expansion in SQL over the concept tables (fhir_search.concepts).

https://hl7.org/fhir/R4/valueset.html#compose -- an expansion is two parts:

- `literals`: concepts a compose lists one by one (`include.concept`) or an `expansion.contains`
  holds, in their order; their systems need not be known here (a list of LOINC codes);
- `query`: a ConceptIndex queryset for whole code systems and filters (`is-a`,
  `descendent-of`, `is-not-a`, `generalizes`, `=`, `in`, `not-in`, `regex`, and
  `property = value`), unions of includes minus excludes, so a value set over a large
  system is counted and paged by the database.

`$expand` pages through literals first, then the query's rows in (system, code) order; `:in` and
`:not-in` match token rows against both (fhir_search.params.token).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from fhir_api.store.terminology import MAX_DEPTH, TerminologyError
from fhir_search import concepts
from fhir_search.models import CodeSystemIndex, ConceptAncestor, ConceptIndex, ConceptProperty
from fhir_search.normalize import clip

Literal = tuple[str, str, str | None]  # (system, code, display)


@dataclass
class Expansion:
    literals: list[Literal] = field(default_factory=list)
    query: Q | None = None  # over ConceptIndex

    def rows(self) -> QuerySet[ConceptIndex]:
        if self.query is None:
            return ConceptIndex.objects.none()
        return ConceptIndex.objects.filter(self.query)

    def concepts(self) -> frozenset[tuple[str, str]]:
        """Every (system, code): for small value sets (search on few codes, tests)."""
        pairs = {(s, c) for s, c, _ in self.literals}
        if self.query is not None:
            pairs.update(self.rows().values_list("code_system__url", "code"))
        return frozenset(pairs)

    def contains(self, system: str | None, code: str) -> bool:
        if any(c == code and (system is None or s == system) for s, c, _ in self.literals):
            return True
        if self.query is None:
            return False
        rows = self.rows().filter(code=clip(code))
        return (rows.filter(code_system__url=clip(system)) if system else rows).exists()


def expand(vs: dict[str, Any], find_value_set: Any, depth: int = 0) -> Expansion:
    """The expansion of a ValueSet resource; `find_value_set(url)` resolves included value sets."""
    if depth > MAX_DEPTH:
        raise TerminologyError(f"The value set {vs.get('url')} includes value sets too deeply (a cycle?)")
    compose = vs.get("compose")
    if not compose:
        contains = (vs.get("expansion") or {}).get("contains")
        if contains is None:
            raise TerminologyError(f"The value set {vs.get('url')} has neither a compose nor an expansion")
        return Expansion(list(_contained(contains)))
    out = Expansion()
    seen: set[tuple[str, str]] = set()
    for include in compose.get("include", ()):
        part = _part(include, find_value_set, depth)
        for lit in part.literals:
            if lit[:2] not in seen:
                seen.add(lit[:2])
                out.literals.append(lit)
        if part.query is not None:
            out.query = part.query if out.query is None else out.query | part.query
    for exclude in compose.get("exclude", ()):
        part = _part(exclude, find_value_set, depth)
        gone = {lit[:2] for lit in part.literals}
        if part.query is not None and out.literals:
            listed = Q()
            for system, code, _ in out.literals:
                listed |= Q(code_system__url=system, code=code)
            gone |= set(ConceptIndex.objects.filter(part.query).filter(listed).values_list("code_system__url", "code"))
        out.literals = [lit for lit in out.literals if lit[:2] not in gone]
        if out.query is not None:
            if part.query is not None:
                out.query &= ~Q(id__in=ConceptIndex.objects.filter(part.query).values("id"))
            for system, code in {lit[:2] for lit in part.literals}:
                out.query &= ~Q(code_system__url=system, code=code)
    return out


def _contained(contains: list[dict[str, Any]]) -> Any:
    for item in contains:
        if isinstance(item.get("system"), str) and isinstance(item.get("code"), str):
            yield item["system"], item["code"], item.get("display")
        yield from _contained(item.get("contains", ()))


def _part(include: dict[str, Any], find_value_set: Any, depth: int) -> Expansion:
    """One compose.include (or exclude)."""
    system = include.get("system")
    value_sets = include.get("valueSet", ())
    if isinstance(system, str) and value_sets:
        raise TerminologyError("A compose include with both a system and value sets is not supported by this server")
    if len(value_sets) > 1:
        raise TerminologyError("A compose include intersecting several value sets is not supported by this server")
    if value_sets:
        found = find_value_set(value_sets[0])
        if found is None:
            raise TerminologyError(f"The value set {value_sets[0]} is not known to this server")
        return expand(found, find_value_set, depth + 1)
    if not isinstance(system, str):
        return Expansion()
    listed = include.get("concept")
    if listed:
        return Expansion([(system, c["code"], c.get("display")) for c in listed if isinstance(c.get("code"), str)])
    header = concepts.code_system(system)
    q = Q(code_system_id=header.id)
    for f in include.get("filter", ()):
        q &= _filter(header, f)
    return Expansion(query=q)


def _filter(header: CodeSystemIndex, f: dict[str, Any]) -> Q:
    prop, op, value = f.get("property"), f.get("op"), f.get("value", "")
    if not isinstance(value, str):
        raise TerminologyError("A compose filter needs a value")
    if prop in ("concept", "code"):
        if op in ("is-a", "descendent-of", "is-not-a"):
            below = ConceptAncestor.objects.filter(ancestor__code_system=header, ancestor__code=clip(value))
            if op == "descendent-of":
                below = below.filter(depth__gt=0)
            q = Q(id__in=below.values("descendant_id"))
            return ~q if op == "is-not-a" else q
        if op == "generalizes":
            above = ConceptAncestor.objects.filter(descendant__code_system=header, descendant__code=clip(value))
            return Q(id__in=above.values("ancestor_id"))
        if op == "=":
            return Q(code=clip(value))
        if op in ("in", "not-in"):
            listed = [clip(v.strip()) for v in value.split(",")]
            return Q(code__in=listed) if op == "in" else ~Q(code__in=listed)
        if op == "regex":
            return Q(code__regex=_anchored(value))
    elif op == "=" and isinstance(prop, str):
        return Q(id__in=ConceptProperty.objects.filter(code=clip(prop, 100), value=clip(value)).values("concept_id"))
    raise TerminologyError(f"The value set filter {prop} {op} {value} on {header.url} is not supported by this server")


def _anchored(pattern: str) -> str:
    """FHIR's regex filter matches the whole code; databases search, so anchor it."""
    import re

    try:
        re.compile(pattern)
    except re.error as exc:
        raise TerminologyError(f"The regex filter {pattern!r} is not a valid regular expression: {exc}") from None
    # PostgreSQL's regular expressions have no (?:...); a plain group anchors just as well.
    return f"^({pattern})$" if connection.vendor == "postgresql" else f"^(?:{pattern})$"
