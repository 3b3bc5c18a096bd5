"""Match search criteria against a resource that is not stored yet (https://hl7.org/fhir/R4/search.html#token).

A transaction may refer conditionally (`Practitioner?identifier=sys|123`) to a resource it
creates itself; the database cannot see that one yet. Token criteria, which is what such
references use, are checked here with the same extraction as the index. Any other kind of
criterion answers "no match", so the caller relies on the database alone.
"""
from __future__ import annotations

from typing import Any

from fhir_search.extraction import Context, extractor
from fhir_search.params import param_type
from fhir_search.params.base import split_unescaped, unescape
from fhir_search.registry import registry


def _token_matches(row: dict[str, Any], raw: str) -> bool:
    parts = split_unescaped(raw, "|", 1)
    if len(parts) == 1:
        return row["value"] == unescape(raw)
    system, code = unescape(parts[0]), unescape(parts[1])
    if system == "":
        return row["system"] is None and row["value"] == code
    if code == "":
        return row["system"] == system
    return row["system"] == system and row["value"] == code


def matches_in_memory(resource_type: str, content: dict[str, Any], params: list[tuple[str, str]]) -> bool:
    """True when every (token) criterion matches the resource; False if any cannot be checked."""
    context = Context(content)
    for name, value in params:
        param = registry().get(resource_type, name)
        if param is None or param.type != "token" or ":" in name or "." in name:
            return False
        ptype = param_type(param)
        if ptype is None or getattr(ptype, "on_resource", False):
            return False
        rows = [
            row
            for typed in extractor(param, resource_type)(context, None)
            for row in ptype.rows(param, typed, context)
        ]
        alternatives = split_unescaped(value, ",")
        if not any(_token_matches(row, alt) for row in rows for alt in alternatives):
            return False
    return True
