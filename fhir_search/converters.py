"""Tiny converters from FHIR datatypes to the values a search index stores.

https://hl7.org/fhir/R4/search.html#table -- which datatypes each search parameter type
accepts and what is matched in them. A value of an unexpected type is logged once per
(parameter type, datatype) and skipped: it never breaks a write.
"""
from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from fhir_api.store.datetimes import parse_range
from fhir_api.store.structure import DEFINITIONS as API_DEFINITIONS
from fhir_search import references, ucum
from fhir_search.extraction import Typed

logger = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()

STRING_PRIMITIVES = frozenset({"string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid"})
NUMBER_PRIMITIVES = frozenset({"integer", "decimal", "positiveInt", "unsignedInt"})
DATE_PRIMITIVES = frozenset({"date", "dateTime", "instant"})
QUANTITY_TYPES = frozenset(
    {"Quantity", "Age", "Duration", "Count", "Distance", "SimpleQuantity", "MoneyQuantity"}
)
CURRENCY_SYSTEM = "urn:iso:std:iso:4217"


def skipped(kind: str, typed: Typed) -> list:
    """Log (once per kind of value) that a value has no index form, and index nothing."""
    key = (kind, typed.type)
    if key not in _warned:
        _warned.add(key)
        logger.info("a %s search parameter does not index values of type %s", kind, typed.type)
    return []


# -- string --------------------------------------------------------------------------------


def strings(typed: Typed) -> list[str]:
    """Text a string parameter matches: every part of a name or address, or the string itself."""
    v = typed.value
    if typed.type in STRING_PRIMITIVES and isinstance(v, str):
        return [v]
    if not isinstance(v, dict):
        return skipped("string", typed)
    if typed.type == "HumanName":
        parts = [v.get("family"), *(v.get("given") or ()), *(v.get("prefix") or ()), *(v.get("suffix") or ())]
        return [p for p in (*parts, v.get("text")) if isinstance(p, str)]
    if typed.type == "Address":
        parts = [*(v.get("line") or ()), v.get("city"), v.get("district"), v.get("state"),
                 v.get("postalCode"), v.get("country"), v.get("text")]
        return [p for p in parts if isinstance(p, str)]
    if typed.type in ("CodeableConcept", "Annotation", "Narrative"):
        return [v["text"]] if isinstance(v.get("text"), str) else []
    if typed.type == "Coding":
        return [v["display"]] if isinstance(v.get("display"), str) else []
    return skipped("string", typed)


# -- token ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    system: str | None
    code: str | None
    text: str | None = None  # display / text, for :text
    type_system: str | None = None  # Identifier.type, for :of-type
    type_code: str | None = None


@cache
def _valueset_systems() -> dict[str, str]:
    """ValueSet URL -> its only code system, for the R4 value sets that include one whole system."""
    import orjson

    raw = gzip.decompress((API_DEFINITIONS / "valuesets.json.gz").read_bytes())
    out = {}
    for entry in orjson.loads(raw)["entry"]:
        vs = entry["resource"]
        if vs.get("resourceType") != "ValueSet":
            continue
        includes = (vs.get("compose") or {}).get("include") or ()
        systems = {i.get("system") for i in includes}
        if len(systems) == 1 and None not in systems:
            out[vs["url"]] = systems.pop()
    return out


def implied_system(typed: Typed) -> str | None:
    """A `code` bound (required) to a value set of one code system implies that system.

    https://hl7.org/fhir/R4/search.html#token: `gender=http://hl7.org/fhir/administrative-gender|male`
    then finds a Patient whose gender is "male".
    """
    element = typed.element
    if element is None or element.binding is None or element.binding[0] != "required":
        return None
    return _valueset_systems().get(element.binding[1].split("|", 1)[0])


def _coding(c: Any, text: str | None = None) -> Token | None:
    if not isinstance(c, dict):
        return None
    system, code = c.get("system"), c.get("code")
    display = c.get("display") if isinstance(c.get("display"), str) else None
    if system is None and code is None:
        return Token(None, None, display or text) if (display or text) else None
    return Token(system, code, display or text)


def tokens(typed: Typed) -> list[Token]:
    v, t = typed.value, typed.type
    if t == "boolean" and isinstance(v, bool):
        return [Token(None, "true" if v else "false")]
    if t in STRING_PRIMITIVES and isinstance(v, str):
        return [Token(implied_system(typed) if t == "code" else None, v)]
    if t in NUMBER_PRIMITIVES and isinstance(v, (int, float)) and not isinstance(v, bool):
        return [Token(None, str(v))]
    if not isinstance(v, dict):
        return skipped("token", typed)
    if t == "Coding":
        return [tok for tok in (_coding(v),) if tok]
    if t == "CodeableConcept":
        text = v.get("text") if isinstance(v.get("text"), str) else None
        out = [tok for tok in (_coding(c) for c in v.get("coding") or ()) if tok]
        if text:  # the concept's own text, for :text
            out.append(Token(None, None, text))
        return out
    if t == "Identifier":
        id_type = v.get("type") if isinstance(v.get("type"), dict) else {}
        type_text = id_type.get("text") if isinstance(id_type.get("text"), str) else None
        codings = [c for c in id_type.get("coding") or () if isinstance(c, dict)] or [{}]
        return [Token(v.get("system"), v.get("value"), type_text, c.get("system"), c.get("code"))
                for c in codings]
    if t == "ContactPoint":
        # The ContactPoint's own system (phone, email...) is the token's system, so
        # `telecom=phone|555-1234` and plain `telecom=555-1234` both work.
        return [Token(v.get("system"), v.get("value"))] if v.get("value") is not None else []
    if t in QUANTITY_TYPES:
        return [Token(v.get("system"), v.get("code"))] if v.get("code") else []
    if t == "Reference" and isinstance(v.get("identifier"), dict):
        ident = v["identifier"]
        return [Token(ident.get("system"), ident.get("value"))]
    return skipped("token", typed)


# -- date ----------------------------------------------------------------------------------


def _range(text: Any) -> tuple[datetime, datetime] | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_range(text)
    except ValueError:
        return None


def dates(typed: Typed) -> list[tuple[datetime | None, datetime | None]]:
    """[low, high) ranges in UTC; None is unbounded (an open Period)."""
    v, t = typed.value, typed.type
    if t in DATE_PRIMITIVES or (t == "string" and isinstance(v, str)):
        r = _range(v)
        return [r] if r else []
    if not isinstance(v, dict):
        return skipped("date", typed)
    if t == "Period":
        start, end = _range(v.get("start")), _range(v.get("end"))
        if start is None and end is None:
            return []
        return [(start[0] if start else None, end[1] if end else None)]
    if t == "Timing":
        out = [r for r in (_range(e) for e in v.get("event") or ()) if r]
        bounds = (v.get("repeat") or {}).get("boundsPeriod")
        if isinstance(bounds, dict):
            out.extend(dates(Typed("Period", bounds, "Period")))
        return out
    return skipped("date", typed)


# -- number and quantity -------------------------------------------------------------------


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def numbers(typed: Typed) -> list[tuple[float, float | None, float | None]]:
    """(value, low, high): a number is a point; a Range is [low, high] (None: open)."""
    v, t = typed.value, typed.type
    if t in NUMBER_PRIMITIVES or t == "string":
        n = as_number(v)
        return [(n, n, n)] if n is not None else []
    if t in QUANTITY_TYPES and isinstance(v, dict):
        n = as_number(v.get("value"))
        return [(n, n, n)] if n is not None else []
    if t == "Range" and isinstance(v, dict):
        return [(q.value, q.low, q.high) for q in quantities(typed)]
    return skipped("number", typed)


@dataclass(frozen=True, slots=True)
class QuantityValue:
    value: float
    low: float | None
    high: float | None
    system: str | None
    unit: str | None

    def canonical(self) -> tuple[str, float | None, float | None, float | None] | None:
        """(unit, value, low, high) in canonical UCUM units, when the conversion is simple."""
        if self.system not in (None, ucum.UCUM):
            return None
        found = ucum.canonical(self.unit)
        if found is None:
            return None
        unit, factor = found

        def scale(x: float | None) -> float | None:
            return None if x is None else x * factor

        return unit, scale(self.value), scale(self.low), scale(self.high)


def quantities(typed: Typed) -> list[QuantityValue]:
    v, t = typed.value, typed.type
    if not isinstance(v, dict):
        if t in NUMBER_PRIMITIVES:
            n = as_number(v)
            return [QuantityValue(n, n, n, None, None)] if n is not None else []
        return skipped("quantity", typed)
    if t in QUANTITY_TYPES:
        n = as_number(v.get("value"))
        if n is None:
            return []
        return [QuantityValue(n, n, n, v.get("system"), v.get("code") or v.get("unit"))]
    if t == "Money":
        n = as_number(v.get("value"))
        return [QuantityValue(n, n, n, CURRENCY_SYSTEM, v.get("currency"))] if n is not None else []
    if t == "Range":
        low = v.get("low") if isinstance(v.get("low"), dict) else {}
        high = v.get("high") if isinstance(v.get("high"), dict) else {}
        lo, hi = as_number(low.get("value")), as_number(high.get("value"))
        if lo is None and hi is None:
            return []
        unit_of = low if lo is not None else high
        middle = lo if hi is None else hi if lo is None else (lo + hi) / 2
        unit = unit_of.get("code") or unit_of.get("unit")
        return [QuantityValue(middle, lo, hi, unit_of.get("system"), unit)]
    return skipped("quantity", typed)


# -- reference and uri ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    target: references.Target
    identifier_system: str | None = None
    identifier_value: str | None = None


def reference_values(typed: Typed) -> list[ReferenceValue]:
    v, t = typed.value, typed.type
    if isinstance(v, str):  # canonical, uri, url
        return [ReferenceValue(references.parse(v))]
    if not isinstance(v, dict):
        return skipped("reference", typed)
    if "resourceType" in v:  # a resource itself (Bundle.entry[0].resource)
        rid = v.get("id")
        return [ReferenceValue(references.Target(v["resourceType"], rid))] if isinstance(rid, str) else []
    if t in ("Reference", "CodeableReference") or "reference" in v or "identifier" in v:
        ref = v.get("reference")
        target = references.Target()
        if isinstance(ref, str) and not ref.startswith("#"):
            target = references.parse(ref)
        ident = v.get("identifier") if isinstance(v.get("identifier"), dict) else {}
        if target == references.Target() and not ident.get("value"):
            return []
        return [ReferenceValue(target, ident.get("system"), ident.get("value"))]
    if t == "Attachment" and isinstance(v.get("url"), str):
        return [ReferenceValue(references.parse(v["url"]))]
    return skipped("reference", typed)


def uris(typed: Typed) -> list[str]:
    v = typed.value
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict) and isinstance(v.get("url"), str):  # Attachment
        return [v["url"]]
    return skipped("uri", typed)
