"""Parameters answered from the resource row itself, and the ones not supported yet.

https://hl7.org/fhir/R4/search.html#all -- `_id` and `_lastUpdated` compare the columns of
fhir_api_resource (logical_id, last_updated), which the store already indexes, so they
need no index rows. `_text`, `_content`, `_query`, `_filter`, `_list` and the special
parameter `near` are defined by R4 but not implemented here yet.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q

from fhir_search.params.base import Env, ParamType, Unsupported, unescape
from fhir_search.params.date import DateQuery, parse_date
from fhir_search.registry import SearchParam


class SpecialParam(ParamType):
    on_resource = True
    column: str = ""

    def resource_condition(self, parsed: Any, modifier: str | None) -> Q:
        raise NotImplementedError

    def condition(self, param: SearchParam, parsed: Any, modifier: str | None) -> Q:
        return self.resource_condition(parsed, modifier)

    def sort_field(self, descending: bool) -> str:
        return self.column


class IdParam(SpecialParam):
    name = "_id"
    column = "logical_id"

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> str:
        value = unescape(raw)
        if not value:
            raise ValueError("_id needs a value")
        return value

    def resource_condition(self, parsed: str, modifier: str | None) -> Q:
        return Q(logical_id=parsed)


class LastUpdatedParam(SpecialParam):
    name = "_lastUpdated"
    column = "last_updated"

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> DateQuery:
        return parse_date(raw)

    def resource_condition(self, parsed: DateQuery, modifier: str | None) -> Q:
        prefix, low, high = parsed
        return prefix.point("last_updated", low, high)


class NotSupported(SpecialParam):
    def __init__(self, name: str) -> None:
        self.name = name

    def accepts(self, modifier: str | None, param: SearchParam) -> bool:
        raise Unsupported(f"The search parameter {self.name} is not supported by this server yet")

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> Any:
        raise Unsupported(f"The search parameter {self.name} is not supported by this server yet")


SPECIAL: dict[str, ParamType] = {
    "_id": IdParam(),
    "_lastUpdated": LastUpdatedParam(),
    **{name: NotSupported(name) for name in ("_text", "_content", "_query", "_filter", "_list", "near")},
}
