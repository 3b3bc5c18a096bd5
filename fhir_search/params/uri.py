"""URI parameters (https://hl7.org/fhir/R4/search.html#uri).

Exact match by default; `:below` matches URIs that start with the query (the query and
everything under it), `:above` the query and every URI above it on '/' boundaries.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q

from fhir_search import converters
from fhir_search.extraction import Context, Typed
from fhir_search.models import UriIndex
from fhir_search.params.base import Env, ParamType, unescape
from fhir_search.registry import SearchParam

MAX_LENGTH = 512


def _above(uri: str) -> list[str]:
    """The URI and each ancestor: http://a/b/c -> [http://a/b/c, http://a/b, http://a]."""
    out = [uri]
    scheme, sep, rest = uri.partition("://")
    while "/" in rest:
        rest = rest.rsplit("/", 1)[0]
        out.append(f"{scheme}{sep}{rest}")
    return out


class UriParam(ParamType):
    name = "uri"
    model = UriIndex
    modifiers = frozenset({"below", "above"})

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [{"value": u[:MAX_LENGTH]} for u in converters.uris(typed) if u]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> str:
        value = unescape(raw)
        if not value:
            raise ValueError("an empty uri matches nothing")
        return value

    def condition(self, param: SearchParam, parsed: str, modifier: str | None) -> Q:
        if modifier == "below":
            return Q(value__startswith=parsed)
        if modifier == "above":
            return Q(value__in=_above(parsed))
        return Q(value=parsed)

    def sort_field(self, descending: bool) -> str:
        return "value"
