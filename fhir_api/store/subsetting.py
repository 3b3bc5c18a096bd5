"""`_summary` and `_elements`: return part of a resource (https://hl7.org/fhir/R4/search.html#summary).

The summary flags come from the StructureDefinitions (`isSummary`); a subset is marked
with the SUBSETTED tag so nobody mistakes it for the whole resource.
"""
from __future__ import annotations

from typing import Any

from fhir_api.store.errors import BadRequest
from fhir_api.store.structure import structures

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
SUMMARY_MODES = ("true", "false", "text", "data", "count")
_ALWAYS = ("resourceType", "id", "meta")


def _element_name(key: str, node: str) -> str | None:
    """The element a JSON key belongs to: "valueQuantity" and "_birthDate" map to their element."""
    name = key[1:] if key.startswith("_") else key
    found = structures().child(node, name)
    return found[0].name if found else None


def _summary_of(value: Any, node: str) -> Any:
    if isinstance(value, list):
        return [_summary_of(v, node) for v in value]
    if not isinstance(value, dict):
        return value
    children = structures().children(node)
    out = {}
    for key, item in value.items():
        name = _element_name(key, node)
        element = children.get(name) if name else None
        if key in _ALWAYS or (element is not None and (element.summary or element.min > 0)):
            # Only backbone elements are filtered inside; data types come whole.
            out[key] = _summary_of(item, element.node) if element is not None and element.node else item
    return out


def _mark(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    out = {"resourceType": resource["resourceType"]}
    if "id" in resource:
        out["id"] = resource["id"]
    out["meta"] = meta
    out.update((k, v) for k, v in resource.items() if k not in out)
    return out


def _mandatory(resource: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    node = resource["resourceType"]
    children = structures().children(node)
    out = {}
    for key, value in resource.items():
        name = _element_name(key, node)
        element = children.get(name) if name else None
        if key in _ALWAYS or (name in keep) or (element is not None and element.min > 0):
            out[key] = value
    return out


def summarize(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """Apply `_summary=mode` to one resource."""
    if mode == "false":
        return resource
    if mode == "true":
        if resource.get("resourceType") in ("Bundle", "Parameters"):
            return resource
        return _mark(_summary_of(resource, resource["resourceType"]))
    if mode == "text":
        return _mark(_mandatory(resource, {"text"}))
    if mode == "data":
        return _mark({k: v for k, v in resource.items() if k != "text"})
    raise BadRequest(f"_summary={mode} is not valid here (use true, text, data or false)")


def select_elements(resource: dict[str, Any], elements: list[str]) -> dict[str, Any]:
    """Apply `_elements=a,b`: those top-level elements plus the mandatory ones."""
    wanted = {e.split(".", 1)[-1] if e.startswith(resource["resourceType"] + ".") else e for e in elements}
    return _mark(_mandatory(resource, wanted))


def subset_params(query: Any) -> tuple[str | None, list[str] | None]:
    """Read and check `_summary` / `_elements` from a query dict."""
    summary = query.get("_summary")
    if summary is not None and summary not in SUMMARY_MODES:
        raise BadRequest(f"_summary={summary} is not one of {', '.join(SUMMARY_MODES)}")
    raw = query.get("_elements")
    elements = [e.strip() for e in raw.split(",") if e.strip()] if raw else None
    return summary, elements


def apply(resource: dict[str, Any], summary: str | None, elements: list[str] | None) -> dict[str, Any]:
    if summary and summary not in ("false", "count"):
        return summarize(resource, summary)
    if elements:
        return select_elements(resource, elements)
    return resource
