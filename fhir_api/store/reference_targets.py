"""Which resource type a Reference points at, and whether its element allows that type.

https://hl7.org/fhir/R4/references.html and https://hl7.org/fhir/R4/elementdefinition.html
(`type.targetProfile`) -- a Reference element of R4 or of a profile names the resource types
(or profiles) it may point at: `Observation.subject` is Reference(Patient | Group | Device |
Location). The type a reference points at is known without fetching anything when it is

- a contained reference `#id` (the type of the contained resource; `#` alone is the container),
- the `fullUrl` of an entry of the Bundle the resource travels in (`urn:uuid:...` included),
- a RESTful URL, relative `Type/id` or absolute `http://server/base/Type/id` (here or elsewhere:
  the type is in the URL, as the HL7 validator reads it), with an optional `/_history/v`,
- or given by `Reference.type`, the only clue of a logical reference (an `identifier` alone).

Otherwise (another URI, a contained id that is not there -- ref-1 reports that at the full
level) nothing is checked. When `reference` and `type` both name a type they must agree
(Reference.type: "both SHALL be consistent").
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fhir_api.store.structure import resource_types

_RESTFUL = re.compile(
    r"(?P<base>[a-z][a-z0-9+.\-]*://\S+?/)?(?P<type>[A-Za-z]+)/[A-Za-z0-9\-.]{1,64}"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?\Z"
)


def contained_types(root: Mapping[str, Any]) -> dict[str, str]:
    """id -> resourceType of the contained resources of a resource; "" is the resource itself."""
    out = {"": str(root.get("resourceType"))}
    for item in root.get("contained") or ():
        if isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("resourceType"), str):
            out[item["id"]] = item["resourceType"]
    return out


def pointed_type(reference: Mapping[str, Any], root: Mapping[str, Any],
                 full_urls: Mapping[str, str]) -> tuple[str | None, list[tuple[str, str]]]:
    """(the type the reference points at or None, problems as (sub-path, message))."""
    problems: list[tuple[str, str]] = []
    literal = reference.get("reference")
    given = reference.get("type")
    given = given if isinstance(given, str) and given in resource_types() else None
    implied = None
    if isinstance(literal, str):
        if literal.startswith("#"):
            implied = contained_types(root).get(literal[1:])
        elif literal in full_urls:
            implied = full_urls[literal]
        else:
            m = _RESTFUL.match(literal)
            if m is not None and m["type"] in resource_types():
                implied = m["type"]
            elif m is not None and m["base"] is None:
                problems.append(("", f"the relative reference {literal[:80]!r} does not start with an R4 "
                                     "resource type (Type/id)"))
    if implied and given and implied != given:
        problems.append((".type", f"Reference.type says {given} but the reference points at a {implied}"))
    return implied or given, problems


def disallowed(target: str | None, allowed: frozenset[str] | None) -> bool:
    return target is not None and allowed is not None and target not in allowed


def local(literal: str, base: str | None) -> tuple[str, str] | None:
    """(type, id) of a reference to this server: relative `Type/id` or absolute under `base`."""
    m = _RESTFUL.match(literal)
    if m is None or m["type"] not in resource_types():
        return None
    if m["base"] is not None and (not base or m["base"].rstrip("/") != base.rstrip("/")):
        return None
    return m["type"], literal[m.end("type") + 1:].split("/", 1)[0]
