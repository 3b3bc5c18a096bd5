"""Token parameters (https://hl7.org/fhir/R4/search.html#token).

`code` (any system), `system|code`, `|code` (no system), `system|` (any code of a system);
`:text` matches the display/text like a string search (at the start of any word), `:not`
finds resources with no matching value, `:of-type` matches an Identifier by its type and
value (`type-system|type-code|value`). Codes compare exactly (case-sensitive).

Terminology modifiers (fhir_search.terminology): `:in=[ValueSet url]` matches a coding in
the value set's expansion, `:not-in` resources with none (like `:not`), `:below=system|code`
the code and the codes it subsumes, `:above=system|code` the code and those subsuming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q

from fhir_search import converters, terminology
from fhir_search.expansion import Expansion
from fhir_search.extraction import Context, Typed
from fhir_search.models import TokenIndex
from fhir_search.normalize import clip, fold
from fhir_search.params.base import Env, ParamType, split_unescaped, unescape
from fhir_search.registry import SearchParam


@dataclass(frozen=True, slots=True)
class TokenQuery:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code
    type_system: str | None = None  # :of-type
    type_code: str | None = None
    text: str | None = None  # :text
    concepts: Expansion | None = None  # :in, :not-in, :above, :below


def _clip(value: Any) -> str | None:
    return clip(value) if isinstance(value, str) else None if value is None else clip(str(value))


class TokenParam(ParamType):
    name = "token"
    model = TokenIndex
    modifiers = frozenset({"text", "not", "of-type", "in", "not-in", "above", "below"})

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        return [
            {
                "system": _clip(t.system),
                "value": _clip(t.code),
                "text": clip(fold(t.text)) if t.text else None,
                "type_system": _clip(t.type_system),
                "type_code": _clip(t.type_code),
            }
            for t in converters.tokens(typed)
        ]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> TokenQuery:
        if modifier == "text":
            return TokenQuery(None, None, text=fold(unescape(raw)))
        if modifier in ("in", "not-in"):
            if not raw:
                raise ValueError(f":{modifier} takes the URL of a value set")
            return TokenQuery(None, None, concepts=terminology.expansion(unescape(raw)))
        if modifier in ("above", "below"):
            parts = split_unescaped(raw, "|", 1)
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{raw!r}: :{modifier} takes system|code")
            system, code = unescape(parts[0]), unescape(parts[1])
            subsumed = terminology.below if modifier == "below" else terminology.above
            return TokenQuery(system, None, concepts=subsumed(system, code))
        if modifier == "of-type":
            parts = split_unescaped(raw, "|", 2)
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"{raw!r}: :of-type takes type-system|type-code|value")
            return TokenQuery(None, unescape(parts[2]), unescape(parts[0]), unescape(parts[1]))
        parts = split_unescaped(raw, "|", 1)
        if len(parts) == 1:
            if not raw:
                raise ValueError("an empty token matches nothing")
            return TokenQuery(None, unescape(raw))
        system, code = unescape(parts[0]), unescape(parts[1])
        if not system and not code:
            raise ValueError("'|' alone is not a token")
        return TokenQuery(system, code or None)

    def condition(self, param: SearchParam, parsed: TokenQuery, modifier: str | None) -> Q:
        if parsed.text is not None:
            # word-start match: "head" finds "Headache" and "Severe headache"
            return Q(text__startswith=parsed.text) | Q(text__contains=" " + parsed.text)
        if parsed.concepts is not None:
            return concepts_condition(parsed.concepts)
        q = Q()
        if parsed.type_system is not None:
            q &= Q(type_system=parsed.type_system, type_code=parsed.type_code)
        if parsed.system == "":
            q &= Q(system__isnull=True)
        elif parsed.system is not None:
            q &= Q(system=parsed.system)
        if parsed.code is not None:
            q &= Q(value=clip(parsed.code))
        return q

    def sort_field(self, descending: bool) -> str:
        return "value"


def concepts_condition(concepts: Expansion) -> Q:
    """Rows holding one of the expansion's concepts: IN lists for the listed ones (one per
    system), and a join on the concept tables for the rest (a value set over a large code
    system is never read into memory)."""
    by_system: dict[str, list[str]] = {}
    for system, code, _ in sorted(concepts.literals, key=lambda lit: lit[:2]):
        by_system.setdefault(system, []).append(clip(code))
    q = Q(pk__in=[])
    for system, codes in by_system.items():
        q |= Q(system=system, value__in=codes)
    if concepts.query is not None:
        q |= Q(Exists(concepts.rows().filter(code=OuterRef("value"), code_system__url=OuterRef("system"))))
    return q
