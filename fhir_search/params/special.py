"""Parameters answered from the resource row itself, the other special ones, and the ones not supported.

https://hl7.org/fhir/R4/search.html#all -- `_id` and `_lastUpdated` compare the columns of
fhir_api_resource (logical_id, last_updated), which the store already indexes, so they
need no index rows. `_list` tests the reference rows of a List's `item`. `_text` and
`_content` are full-text (fhir_search.params.text); `_filter` is read by the request
parser as a whole expression (fhir_search.query.filter). The special parameter `near`
(Location) has its own index table (fhir_search.params.near). `_query` is defined by R4
but not implemented here.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q

from fhir_search.models import ReferenceIndex
from fhir_search.params.base import Env, ParamType, Unsupported, unescape
from fhir_search.params.date import DateQuery, parse_date
from fhir_search.params.near import NearParam
from fhir_search.params.text import TextParam
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


class ListParam(SpecialParam):
    """`_list=42`: the resources List/42 has as entries (search.html#list)."""

    name = "_list"

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> str:
        value = unescape(raw).removeprefix("List/")
        if value.startswith("$"):
            raise Unsupported(f"The functional list {value} is not supported by this server")
        if not value or "/" in value:
            raise ValueError(f"{raw!r} is not the id of a List")
        return value

    def resource_condition(self, parsed: str, modifier: str | None) -> Q:
        entries = ReferenceIndex.objects.filter(
            code="item", resource_type="List", resource__logical_id=parsed,
            target_type=OuterRef("resource_type"), target_id=OuterRef("logical_id"),
        )
        return Q(Exists(entries))

    def sort_field(self, descending: bool) -> None:
        return None


class FilterParam(SpecialParam):
    """`_filter`: the request parser reads the whole expression (fhir_search.query.filter)."""

    name = "_filter"

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> Any:
        raise Unsupported("_filter can only be used as a parameter of its own, not in a chain or _has")

    def sort_field(self, descending: bool) -> None:
        return None


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
    "_list": ListParam(),
    "_filter": FilterParam(),
    "_text": TextParam("_text"),
    "_content": TextParam("_content"),
    "near": NearParam(),
    "_query": NotSupported("_query"),
}
