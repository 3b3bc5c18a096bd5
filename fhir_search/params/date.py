"""Date parameters (https://hl7.org/fhir/R4/search.html#date).

Every value is a range: "2020-03" is all of March 2020, a Period is [start, end], a Timing
its events. The query value is a range too, and each prefix compares the two ranges.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from fhir_api.store.datetimes import parse_range
from fhir_search import converters, prefixes
from fhir_search.extraction import Context, Typed
from fhir_search.models import DateIndex
from fhir_search.params.base import Env, ParamType
from fhir_search.registry import SearchParam

DateQuery = tuple[prefixes.Prefix, datetime, datetime]


def parse_date(raw: str) -> DateQuery:
    # A "+" of a time zone arrives as a space when the client did not percent-encode it.
    prefix, rest = prefixes.split(raw.strip().replace(" ", "+"))
    low, high = parse_range(rest)  # ValueError when malformed
    return prefix, low, high


class DateParam(ParamType):
    name = "date"
    model = DateIndex

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [{"low": low, "high": high} for low, high in converters.dates(typed)]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> DateQuery:
        return parse_date(raw)

    def condition(self, param: SearchParam, parsed: DateQuery, modifier: str | None) -> Q:
        prefix, low, high = parsed
        return prefix.dates("low", "high", low, high)

    def sort_field(self, descending: bool) -> str:
        # ascending by the earliest start, descending by the latest end
        return "high" if descending else "low"
