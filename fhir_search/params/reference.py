"""Reference parameters (https://hl7.org/fhir/R4/search.html#reference).

`Patient/123`, `123` (any allowed target type), an absolute URL (local when it is under this
server's base, else compared as written), `:Patient` to name the type, `:identifier` to
match Reference.identifier (`system|value`). Canonical references compare by URL, with an
optional `|version`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from fhir_api.store.structure import resource_types
from fhir_search import converters, references
from fhir_search.extraction import Context, Typed
from fhir_search.models import ReferenceIndex
from fhir_search.normalize import clip
from fhir_search.params.base import Env, ParamType, split_unescaped, unescape
from fhir_search.registry import SearchParam


@dataclass(frozen=True, slots=True)
class ReferenceQuery:
    type: str | None = None  # local target
    id: str | None = None
    url: str | None = None  # other URIs
    version: str | None = None
    identifier_system: str | None = None  # :identifier (None: any system)
    identifier_value: str | None = None


def _opt(value: str | None, length: int = 255) -> str | None:
    return value[:length] if value else None


def reference_columns(value: converters.ReferenceValue) -> dict[str, Any]:
    t = value.target
    return {
        "target_type": t.type,
        "target_id": t.id,
        "target_version": _opt(t.version, 64),
        "url": _opt(t.url, 512),
        "identifier_system": _opt(value.identifier_system),
        "identifier_value": _opt(value.identifier_value),
    }


def parse_reference(raw: str, modifier: str | None, env: Env) -> ReferenceQuery:
    value = unescape(raw)
    if not value:
        raise ValueError("an empty reference matches nothing")
    if modifier == "identifier":
        parts = split_unescaped(raw, "|", 1)
        if len(parts) == 1:
            return ReferenceQuery(identifier_value=value)
        system, value = unescape(parts[0]) or None, unescape(parts[1])
        return ReferenceQuery(identifier_system=system, identifier_value=value)
    type_modifier = modifier if modifier in resource_types() else None
    if "/" not in value and ":" not in value:  # a bare id
        return ReferenceQuery(type=type_modifier, id=value)
    target = references.parse(value, env.base or None)
    if target.id is not None:
        if type_modifier and target.type != type_modifier:
            raise ValueError(f"{value!r} is not a {type_modifier} reference")
        # An absolute URL of this server also matches references stored in that form.
        url = value.split("/_history/", 1)[0] if "://" in value else None
        return ReferenceQuery(type=target.type, id=target.id, url=url)
    return ReferenceQuery(url=target.url, version=target.version)


class ReferenceParam(ParamType):
    name = "reference"
    model = ReferenceIndex
    modifiers = frozenset({"identifier"})

    def accepts(self, modifier: str | None, param: SearchParam) -> bool:
        if modifier in resource_types():  # :[type]
            return not param.targets or modifier in param.targets
        return super().accepts(modifier, param)

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [reference_columns(v) for v in converters.reference_values(typed)]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> ReferenceQuery:
        return parse_reference(raw, modifier, env)

    def condition(self, param: SearchParam, parsed: ReferenceQuery, modifier: str | None) -> Q:
        if parsed.identifier_value is not None:
            q = Q(identifier_value=clip(parsed.identifier_value))
            if parsed.identifier_system:
                q &= Q(identifier_system=parsed.identifier_system)
            return q
        if parsed.id is not None:
            q = Q(target_id=parsed.id)
            if parsed.type:
                q &= Q(target_type=parsed.type)
            elif len(param.targets) == 1:
                q &= Q(target_type=param.targets[0])
            return q | Q(url=_opt(parsed.url, 512)) if parsed.url else q
        q = Q(url=_opt(parsed.url, 512))
        if parsed.version:
            q &= Q(target_version=parsed.version)
        return q

    def sort_field(self, descending: bool) -> str:
        return "target_id"
