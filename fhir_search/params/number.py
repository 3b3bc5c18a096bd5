"""Number parameters (https://hl7.org/fhir/R4/search.html#number).

A query number carries its precision: "100" means [99.5, 100.5), "100.00" [99.995, 100.005),
"1e2" [50, 150). eq, ne and ap use that range; the other prefixes compare with the number.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q

from fhir_search import converters, prefixes
from fhir_search.extraction import Context, Typed
from fhir_search.models import NumberIndex
from fhir_search.params.base import Env, ParamType
from fhir_search.registry import SearchParam


@dataclass(frozen=True, slots=True)
class NumberQuery:
    prefix: prefixes.Prefix
    value: float
    low: float  # the implicit precision range [low, high)
    high: float

    def condition(self, low_field: str, high_field: str, scale: float = 1.0) -> Q:
        value, low, high = self.value * scale, self.low * scale, self.high * scale
        return self.prefix.numbers(low_field, high_field, value, low, high)


def parse_number(raw: str) -> NumberQuery:
    prefix, rest = prefixes.split(raw.strip())
    try:
        number = Decimal(rest)
    except InvalidOperation:
        raise ValueError(f"{rest!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{rest!r} is not a finite number")
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)  # half a unit of the last digit
    return NumberQuery(prefix, float(number), float(number - half), float(number + half))


class NumberParam(ParamType):
    name = "number"
    model = NumberIndex

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [{"value": v, "low": lo, "high": hi} for v, lo, hi in converters.numbers(typed)]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> NumberQuery:
        return parse_number(raw)

    def condition(self, param: SearchParam, parsed: NumberQuery, modifier: str | None) -> Q:
        return parsed.condition("low", "high")

    def sort_field(self, descending: bool) -> str:
        return "value"
