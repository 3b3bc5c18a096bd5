"""String parameters (https://hl7.org/fhir/R4/search.html#string).

Matches when a value starts with the query, ignoring case and accents ("Zoë" finds "zoe");
`:exact` compares the text as written, `:contains` matches anywhere in the value.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q

from fhir_search import converters
from fhir_search.extraction import Context, Typed
from fhir_search.models import StringIndex
from fhir_search.normalize import clip, fold
from fhir_search.params.base import Env, ParamType, unescape
from fhir_search.registry import SearchParam


class StringParam(ParamType):
    name = "string"
    model = StringIndex
    modifiers = frozenset({"exact", "contains"})

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [{"value": clip(fold(s)), "exact": clip(s)} for s in converters.strings(typed) if s.strip()]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> str:
        value = unescape(raw)
        if not value:
            raise ValueError("an empty string matches nothing")
        return value

    def condition(self, param: SearchParam, parsed: str, modifier: str | None) -> Q:
        if modifier == "exact":
            return Q(exact=clip(parsed))
        folded = clip(fold(parsed))
        if modifier == "contains":
            return Q(value__contains=folded)
        return Q(value__startswith=folded)

    def sort_field(self, descending: bool) -> str:
        return "value"
