"""The columns of a resource list: chosen per type, with a generic fallback for every other type.

Each column turns a resource's JSON into a short text (or a reference to link). Shapes that
are not what a column expects show as blank, never as an error: stored resources are valid,
but a column reads only the common shapes of an element.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Cell:
    text: str
    reference: str = ""  # "Type/id" to link to, when the cell is a local reference


@dataclass(frozen=True)
class Column:
    label: str
    value: Callable[[Json], Cell]


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else (value if not isinstance(value, list) else None)


def human_name(name: Any) -> str:
    name = _first(name)
    if not isinstance(name, dict):
        return ""
    if name.get("text"):
        return str(name["text"])
    given = " ".join(str(g) for g in name.get("given") or [] if isinstance(g, str))
    family = name.get("family") or ""
    return ", ".join(p for p in (str(family), given) if p)


def concept(value: Any) -> str:
    """A CodeableConcept, Coding or code as a person reads it."""
    value = _first(value)
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    if value.get("text"):
        return str(value["text"])
    coding = _first(value.get("coding")) if "coding" in value else value
    if isinstance(coding, dict):
        return str(coding.get("display") or coding.get("code") or "")
    return ""


def period(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    start, end = value.get("start", ""), value.get("end", "")
    return f"{start} to {end}" if end else (f"from {start}" if start else "")


def quantity(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    unit = value.get("unit") or value.get("code") or ""
    return f"{value.get('comparator', '')}{value.get('value', '')} {unit}".strip()


def observed_value(resource: Json) -> str:
    for key, shown in (("valueQuantity", quantity), ("valueCodeableConcept", concept)):
        if key in resource:
            return shown(resource[key])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime", "valueTime"):
        if key in resource:
            return str(resource[key])
    if "component" in resource:
        parts = [f"{concept(c.get('code'))} {quantity(c.get('valueQuantity'))}".strip()
                 for c in resource["component"] if isinstance(c, dict)]
        return "; ".join(p for p in parts if p)
    return ""


def effective(resource: Json) -> str:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in resource:
            return str(resource[key])
    return period(resource.get("effectivePeriod"))


def reference(value: Any) -> Cell:
    value = _first(value)
    if not isinstance(value, dict):
        return Cell("")
    target = value.get("reference") or ""
    local = target if re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}", target) else ""
    return Cell(str(value.get("display") or target), local)


def identifier(value: Any) -> str:
    value = _first(value)
    return str(value.get("value", "")) if isinstance(value, dict) else ""


_TAGS = re.compile(r"<[^>]*>")


def summary(resource: Json) -> str:
    """The narrative's words, or else the first coded element of the resource."""
    div = (resource.get("text") or {}).get("div") if isinstance(resource.get("text"), dict) else None
    if isinstance(div, str):
        words = " ".join(_TAGS.sub(" ", div).split())
        if words:
            return words[:120] + ("..." if len(words) > 120 else "")
    for key in ("code", "type", "category", "class", "status"):
        if key in resource and (shown := concept(resource[key])):
            return shown
    for key, value in resource.items():
        if key in ("meta", "text", "id", "resourceType"):
            continue
        if isinstance(value, dict) and ("coding" in value or "text" in value):
            return concept(value)
    return ""


def _text(fn: Callable[[Json], str]) -> Callable[[Json], Cell]:
    return lambda resource: Cell(fn(resource))


def _field(key: str, fn: Callable[[Any], str] = lambda v: str(v) if v is not None else "") -> Callable[[Json], Cell]:
    return lambda resource: Cell(fn(resource.get(key)))


def _ref(key: str) -> Callable[[Json], Cell]:
    return lambda resource: reference(resource.get(key))


PER_TYPE: dict[str, list[Column]] = {
    "Patient": [
        Column("Name", _field("name", human_name)),
        Column("Birth date", _field("birthDate")),
        Column("Gender", _field("gender")),
        Column("Identifier", _field("identifier", identifier)),
    ],
    "Practitioner": [
        Column("Name", _field("name", human_name)),
        Column("Identifier", _field("identifier", identifier)),
        Column("Gender", _field("gender")),
    ],
    "RelatedPerson": [
        Column("Name", _field("name", human_name)),
        Column("Patient", _ref("patient")),
        Column("Relationship", _field("relationship", concept)),
    ],
    "Observation": [
        Column("Code", _field("code", concept)),
        Column("Subject", _ref("subject")),
        Column("Effective", _text(effective)),
        Column("Value", _text(observed_value)),
    ],
    "Encounter": [
        Column("Class", _field("class", concept)),
        Column("Subject", _ref("subject")),
        Column("Period", _field("period", period)),
        Column("Status", _field("status")),
    ],
    "Condition": [
        Column("Code", _field("code", concept)),
        Column("Subject", _ref("subject")),
        Column("Clinical status", _field("clinicalStatus", concept)),
        Column("Onset", _field("onsetDateTime")),
    ],
    "Organization": [
        Column("Name", _field("name")),
        Column("Identifier", _field("identifier", identifier)),
    ],
}
GENERIC = [Column("Summary", _text(summary))]


def columns_for(resource_type: str) -> list[Column]:
    return PER_TYPE.get(resource_type, GENERIC)
