"""Quantity parameters (https://hl7.org/fhir/R4/search.html#quantity).

`[prefix]number|system|code`: with a system and code the unit must match; with `||code`
any system will do; with only a number the unit is ignored. When the unit is UCUM with a
simple conversion (fhir_search.ucum), values compare in canonical units, so "1|...|g"
finds 1000 mg.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from fhir_search import converters, ucum
from fhir_search.extraction import Context, Typed
from fhir_search.models import QuantityIndex
from fhir_search.normalize import clip
from fhir_search.params.base import Env, ParamType, split_unescaped, unescape
from fhir_search.params.number import NumberQuery, parse_number
from fhir_search.registry import SearchParam


@dataclass(frozen=True, slots=True)
class QuantityQuery:
    number: NumberQuery
    system: str | None  # None: any system
    unit: str | None  # None: any unit


def parse_quantity(raw: str) -> QuantityQuery:
    parts = split_unescaped(raw, "|", 2)
    number = parse_number(unescape(parts[0]))
    if len(parts) == 1:
        return QuantityQuery(number, None, None)
    if len(parts) != 3:
        raise ValueError(f"{raw!r} is not number|system|code")
    system, unit = unescape(parts[1]) or None, unescape(parts[2]) or None
    return QuantityQuery(number, system, unit)


def quantity_condition(q: QuantityQuery, cols: dict[str, str]) -> Q:
    """The condition for one quantity, on columns named by `cols` (composites rename them)."""
    raw = q.number.condition(cols["low"], cols["high"])
    if q.unit is None:
        return raw & Q(**{cols["system"]: q.system}) if q.system else raw
    as_written = raw & Q(**{cols["unit"]: q.unit})
    if q.system:
        as_written &= Q(**{cols["system"]: q.system})
    conversion = ucum.canonical(q.unit) if q.system in (None, ucum.UCUM) else None
    if conversion is None:
        return as_written
    unit, factor = conversion
    canonical = Q(**{cols["canonical_unit"]: unit}) & q.number.condition(
        cols["canonical_low"], cols["canonical_high"], factor)
    return canonical | as_written


COLUMNS = {
    k: k for k in ("low", "high", "system", "unit", "canonical_unit", "canonical_low", "canonical_high")
}


def quantity_columns(value: converters.QuantityValue) -> dict[str, Any]:
    canonical = value.canonical()
    return {
        "value": value.value,
        "low": value.low,
        "high": value.high,
        "system": clip(value.system) if value.system else None,
        "unit": clip(value.unit) if value.unit else None,
        "canonical_unit": canonical[0] if canonical else None,
        "canonical_value": canonical[1] if canonical else None,
        "canonical_low": canonical[2] if canonical else None,
        "canonical_high": canonical[3] if canonical else None,
    }


class QuantityParam(ParamType):
    name = "quantity"
    model = QuantityIndex

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [quantity_columns(v) for v in converters.quantities(typed)]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> QuantityQuery:
        return parse_quantity(raw)

    def condition(self, param: SearchParam, parsed: QuantityQuery, modifier: str | None) -> Q:
        return quantity_condition(parsed, COLUMNS)

    def sort_field(self, descending: bool) -> str:
        return "value"
