"""Composite parameters (https://hl7.org/fhir/R4/search.html#composite).

`code-value-quantity=http://loinc.org|8480-6$gt100` matches when one element (here the
Observation, or one Observation.component) has both a matching code and a matching value.
Each element gives one index row per combination of its component values, and the query
tests all components against the same row. R4 composites are token or reference first,
then token, string, quantity, number or date, and a third number for sequence windows.
"""
from __future__ import annotations

import itertools
import logging
from datetime import datetime
from functools import cache
from typing import Any

from django.db.models import Q

from fhir_search import converters
from fhir_search.extraction import Context, Typed, component_extractor
from fhir_search.models import CompositeIndex
from fhir_search.normalize import clip, fold
from fhir_search.params.base import Env, ParamType, split_unescaped, unescape
from fhir_search.params.date import parse_date
from fhir_search.params.number import parse_number
from fhir_search.params.quantity import parse_quantity, quantity_columns, quantity_condition
from fhir_search.params.reference import parse_reference, reference_columns
from fhir_search.params.token import TokenParam
from fhir_search.registry import SearchParam, registry

logger = logging.getLogger(__name__)
_TOKEN = TokenParam()


@cache
def component_types(param: SearchParam) -> tuple[str, ...]:
    """The parameter type of each component, from the definitions the components name."""
    out = []
    for url, _ in param.components:
        definition = registry().by_url(url)
        out.append(definition.type if definition else "unknown")
    return tuple(out)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _columns(kind: str, p: int, typed: Typed) -> list[dict[str, Any]]:
    """The column values of one component value at position p (1, 2 or 3)."""
    c = f"c{p}_"
    if kind == "token" and p < 3:
        return [{c + "system": clip(t.system) if t.system else None, c + "value": clip(t.code)}
                for t in converters.tokens(typed) if t.code]
    if kind == "reference" and p < 3:
        out = []
        for v in converters.reference_values(typed):
            cols = reference_columns(v)
            value = cols["target_id"] or clip(cols["url"] or "")
            out.append({c + "system": cols["target_type"], c + "value": value})
        return out
    if kind == "string" and p == 2:
        return [{"c2_value": clip(fold(s))} for s in converters.strings(typed)]
    if kind == "quantity" and p == 2:
        out = []
        for v in converters.quantities(typed):
            cols = quantity_columns(v)
            out.append({
                "c2_low": cols["low"], "c2_high": cols["high"], "c2_system": cols["system"],
                "c2_value": cols["unit"], "c2_canonical_unit": cols["canonical_unit"],
                "c2_canonical_low": cols["canonical_low"], "c2_canonical_high": cols["canonical_high"],
            })
        return out
    if kind == "number" and p > 1:
        return [{c + "low": lo, c + "high": hi} for _, lo, hi in converters.numbers(typed)]
    if kind == "date" and p == 2:
        return [{"c2_low": _epoch(lo), "c2_high": _epoch(hi)} for lo, hi in converters.dates(typed)]
    logger.info("composite component of type %s at position %s is not indexed", kind, p)
    return []


_QUANTITY_COLUMNS = {"low": "c2_low", "high": "c2_high", "system": "c2_system", "unit": "c2_value",
                     "canonical_unit": "c2_canonical_unit", "canonical_low": "c2_canonical_low",
                     "canonical_high": "c2_canonical_high"}


class CompositeParam(ParamType):
    name = "composite"
    model = CompositeIndex

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        kinds = component_types(param)
        if len(kinds) > 3:
            return []
        per_component = []
        # Last component first: it is the value (`value.as(CodeableConcept)` of code-value-concept),
        # which most elements lack, so most composites end here before the code is converted.
        for index in reversed(range(len(kinds))):
            values = component_extractor(param, index, typed.node)(context, [typed])
            cols = [col for v in values for col in _columns(kinds[index], index + 1, v)]
            if not cols:
                return []  # an element without every component cannot match a composite query
            per_component.append(cols)
        per_component.reverse()
        rows = []
        for combination in itertools.product(*per_component):
            row: dict[str, Any] = {}
            for cols in combination:
                row.update(cols)
            rows.append(row)
        return rows

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> list[tuple[str, Any]]:
        kinds = component_types(param)
        parts = split_unescaped(raw, "$")
        if len(parts) != len(kinds):
            raise ValueError(f"{param.code} takes {len(kinds)} values joined by '$'")
        out: list[tuple[str, Any]] = []
        for kind, part in zip(kinds, parts, strict=True):
            if kind == "token":
                out.append((kind, _TOKEN.parse(param, part, None, env)))
            elif kind == "reference":
                out.append((kind, parse_reference(part, None, env)))
            elif kind == "string":
                out.append((kind, fold(unescape(part))))
            elif kind == "quantity":
                out.append((kind, parse_quantity(part)))
            elif kind == "number":
                out.append((kind, parse_number(unescape(part))))
            elif kind == "date":
                out.append((kind, parse_date(unescape(part))))
            else:
                raise ValueError(f"{param.code}: component type {kind} is not supported")
        return out

    def condition(self, param: SearchParam, parsed: list[tuple[str, Any]], modifier: str | None) -> Q:
        q = Q()
        for p, (kind, value) in enumerate(parsed, start=1):
            c = f"c{p}_"
            if kind == "token":
                if value.system == "":
                    q &= Q(**{c + "system__isnull": True})
                elif value.system is not None:
                    q &= Q(**{c + "system": value.system})
                if value.code is not None:
                    q &= Q(**{c + "value": clip(value.code)})
            elif kind == "reference":
                if value.id is not None:
                    q &= Q(**{c + "value": value.id})
                    if value.type:
                        q &= Q(**{c + "system": value.type})
                else:
                    q &= Q(**{c + "value": clip(value.url or "")})
            elif kind == "string":
                q &= Q(c2_value__startswith=clip(value))
            elif kind == "quantity":
                q &= quantity_condition(value, _QUANTITY_COLUMNS)
            elif kind == "number":
                q &= value.condition(c + "low", c + "high")
            elif kind == "date":
                prefix, low, high = value
                q &= prefix.dates(c + "low", c + "high", low.timestamp(), high.timestamp())
        return q
