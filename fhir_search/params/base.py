"""What every search parameter type module provides (https://hl7.org/fhir/R4/search.html#ptypes).

One module per type (string, token, date, number, quantity, reference, uri, composite,
special), each one `ParamType` subclass with the same small interface:

- `modifiers`: the modifiers it accepts (`missing` is handled for all types by the builder);
- `rows(param, typed, context)`: the index rows (column dicts) for one extracted value;
- `parse(param, raw, modifier, env)`: one query value (one item of a comma list), or ValueError;
- `condition(param, parsed, modifier)`: a Q over the type's index table for that value;
- `sort_field(descending)`: the column a `_sort` on the parameter orders by.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from django.db.models import Model, Q

from fhir_search.extraction import Context, Typed
from fhir_search.registry import SearchParam

# Modifiers R4 defines that this server does not implement yet (terminology, text search).
NOT_SUPPORTED_MODIFIERS = frozenset({"in", "not-in", "above", "below", "text-advanced"})


class Unsupported(Exception):
    """A parameter or modifier R4 defines but this server does not support (yet)."""


@dataclass(frozen=True)
class Env:
    """What parsing a query value may depend on besides the value."""

    base: str = ""  # this server's base URL: absolute references under it are local
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # The access filter the search is handed (fhir_search.access): the rows of a type that a
    # chain, `_has` or `_filter` may look at; None when nothing narrows the search.
    visible: Callable[[str], Q | None] | None = None
    # Every criterion a per-row probe that PostgreSQL cannot turn into a join (no driver):
    # for a page read in the order of an index (fhir_search.query.index_order), whatever the
    # planner's statistics say about how many rows a criterion matches.
    fenced: bool = False


class ParamType:
    name: ClassVar[str]
    model: ClassVar[type[Model] | None] = None
    modifiers: ClassVar[frozenset[str]] = frozenset()
    # True for parameters answered from columns of fhir_api_resource (_id, _lastUpdated)
    on_resource: ClassVar[bool] = False

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        raise NotImplementedError

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> Any:
        raise NotImplementedError

    def condition(self, param: SearchParam, parsed: Any, modifier: str | None) -> Q:
        raise NotImplementedError

    def sort_field(self, descending: bool) -> str | None:
        return None

    def accepts(self, modifier: str | None, param: SearchParam) -> bool:
        return modifier is None or modifier == "missing" or modifier in self.modifiers


# -- escaping (https://hl7.org/fhir/R4/search.html#escaping) --------------------------------

_ESCAPE = re.compile(r"\\(.)")


def split_unescaped(value: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on `sep` where it is not escaped with a backslash; escapes are kept."""
    parts, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i : i + 2])
            i += 2
            continue
        if ch == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    return _ESCAPE.sub(r"\1", value)
