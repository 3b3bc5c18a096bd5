"""Value set expansion and code system subsumption for the token modifiers.

https://hl7.org/fhir/R4/search.html#token (`:in`, `:not-in`, `:above`, `:below`) over
https://hl7.org/fhir/R4/valueset.html#compose and codesystem.html#hierarchy -- a small
terminology service, enough for search:

- value sets and code systems come from the server's store (ValueSet and CodeSystem
  resources, found by `url`, or `ValueSet/[id]`) and else from the R4 ones the project
  ships (fhir_api/store/definitions/valuesets.json.gz);
- `compose.include`/`exclude` with concept lists, whole code systems (every code of a
  known CodeSystem), other value sets, and filters on the code system's hierarchy
  (`is-a`, `descendent-of`, `is-not-a`, `generalizes`), on codes (`=`, `in`, `not-in`,
  `regex`) and `=` on concept properties; a value set with no compose uses its
  `expansion.contains`;
- hierarchies are the nesting of CodeSystem.concept plus `parent`/`subsumedBy` properties.

What cannot be expanded (an unknown value set or code system, another filter) raises a
TerminologyError, which search answers with 400 in strict mode. Expansions are cached per
URL; the cache is dropped when stored ValueSets or CodeSystems change (fhir_search.watch).
"""
from __future__ import annotations

import gzip
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson

from fhir_api.store import jsonio
from fhir_api.store.models import Resource
from fhir_search.converters import API_DEFINITIONS
from fhir_search.models import UriIndex
from fhir_search.watch import StoreWatch

RESOURCE_TYPES = ("ValueSet", "CodeSystem")
Concept = tuple[str, str]  # (system, code)
MAX_DEPTH = 20  # value sets including value sets: deeper than this is a cycle or abuse


class TerminologyError(ValueError):
    """A value set or code system this server cannot expand."""


@dataclass
class Hierarchy:
    """The codes of one code system, their parents and properties."""

    url: str
    parents: dict[str, set[str]] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    properties: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def codes(self) -> Iterable[str]:
        return self.parents.keys()

    def below(self, code: str) -> set[str]:
        """The code and all its descendants."""
        return self._closure(code, self.children)

    def above(self, code: str) -> set[str]:
        """The code and all its ancestors."""
        return self._closure(code, self.parents)

    @staticmethod
    def _closure(code: str, edges: dict[str, set[str]]) -> set[str]:
        out, todo = {code}, [code]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in out:
                    out.add(nxt)
                    todo.append(nxt)
        return out


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _hierarchy(cs: dict[str, Any]) -> Hierarchy:
    tree = Hierarchy(cs.get("url", ""))

    def walk(concepts: list[dict[str, Any]], parent: str | None) -> None:
        for concept in concepts:
            code = concept.get("code")
            if not isinstance(code, str):
                continue
            tree.parents.setdefault(code, set())
            tree.children.setdefault(code, set())
            if parent is not None:
                tree.parents[code].add(parent)
            props = tree.properties.setdefault(code, {})
            for prop in concept.get("property", ()):
                values = {_text(v) for k, v in prop.items() if k.startswith("value")}
                props.setdefault(prop.get("code", ""), set()).update(values)
                if prop.get("code") in ("parent", "subsumedBy"):
                    tree.parents[code].update(values)
            walk(concept.get("concept", ()), code)

    walk(cs.get("concept", ()), None)
    for code, parents in tree.parents.items():
        for parent in parents:
            tree.children.setdefault(parent, set()).add(code)
    return tree


# -- where definitions come from ---------------------------------------------------------


@cache
def _shipped() -> dict[str, dict[str, dict[str, Any]]]:
    """The R4 value sets and code systems the project ships, by type and URL."""
    raw = gzip.decompress((API_DEFINITIONS / "valuesets.json.gz").read_bytes())
    out: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in RESOURCE_TYPES}
    for entry in orjson.loads(raw)["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") in out and resource.get("url"):
            out[resource["resourceType"]][resource["url"]] = resource
    return out


def _stored(resource_type: str, reference: str) -> dict[str, Any] | None:
    """A ValueSet/CodeSystem stored here, by canonical URL or by `Type/id`."""
    rows = Resource.objects.filter(resource_type=resource_type, deleted=False)
    if reference.startswith(resource_type + "/"):
        rows = rows.filter(logical_id=reference.split("/", 1)[1])
    else:
        urls = UriIndex.objects.filter(code="url", resource_type=resource_type, value=reference)
        rows = rows.filter(pk__in=urls.values("resource_id"))
    data = rows.order_by("-last_updated").values_list("data", flat=True).first()
    return jsonio.loads(data) if data else None


def _find(resource_type: str, reference: str) -> dict[str, Any] | None:
    url = reference.split("|", 1)[0]  # a version is not told apart: the latest one is used
    return _stored(resource_type, url) or _shipped()[resource_type].get(url)


# -- caches ------------------------------------------------------------------------------

_watch = StoreWatch(*RESOURCE_TYPES)
_lock = threading.Lock()
_expansions: dict[str, frozenset[Concept]] = {}
_hierarchies: dict[str, Hierarchy] = {}


def touch() -> None:
    """A ValueSet or CodeSystem was written in this process: recheck before the next use."""
    _watch.touch()


def _fresh() -> None:
    if _watch.changed():
        with _lock:
            _expansions.clear()
            _hierarchies.clear()


def hierarchy(system: str) -> Hierarchy:
    _fresh()
    found = _hierarchies.get(system)
    if found is None:
        cs = _find("CodeSystem", system)
        if cs is None:
            raise TerminologyError(f"The code system {system} is not known to this server")
        if cs.get("content") not in (None, "complete", "fragment"):
            raise TerminologyError(f"The code system {system} does not list its codes (content={cs['content']})")
        found = _hierarchy(cs)
        _hierarchies[system] = found
    return found


def expand(reference: str) -> frozenset[Concept]:
    """The (system, code) pairs of a value set, by canonical URL or `ValueSet/[id]`."""
    _fresh()
    found = _expansions.get(reference)
    if found is None:
        found = frozenset(_expand(reference, 0))
        _expansions[reference] = found
    return found


def below(system: str, code: str) -> frozenset[Concept]:
    """A code and every code it subsumes (`:below`)."""
    tree = hierarchy(system)
    return frozenset((system, c) for c in (tree.below(code) if code in tree.parents else {code}))


def above(system: str, code: str) -> frozenset[Concept]:
    """A code and every code that subsumes it (`:above`)."""
    tree = hierarchy(system)
    return frozenset((system, c) for c in (tree.above(code) if code in tree.parents else {code}))


# -- expansion ---------------------------------------------------------------------------


def _expand(reference: str, depth: int) -> set[Concept]:
    if depth > MAX_DEPTH:
        raise TerminologyError(f"The value set {reference} includes value sets too deeply (a cycle?)")
    vs = _find("ValueSet", reference)
    if vs is None:
        raise TerminologyError(f"The value set {reference} is not known to this server")
    compose = vs.get("compose")
    if compose:
        out: set[Concept] = set()
        for include in compose.get("include", ()):
            out |= _include(include, depth)
        for exclude in compose.get("exclude", ()):
            out -= _include(exclude, depth)
        return out
    contains = (vs.get("expansion") or {}).get("contains")
    if contains is not None:
        return set(_contained(contains))
    raise TerminologyError(f"The value set {reference} has neither a compose nor an expansion")


def _contained(contains: list[dict[str, Any]]) -> Iterable[Concept]:
    for item in contains:
        if isinstance(item.get("system"), str) and isinstance(item.get("code"), str):
            yield item["system"], item["code"]
        yield from _contained(item.get("contains", ()))


def _include(include: dict[str, Any], depth: int) -> set[Concept]:
    """One compose.include (or exclude): its system part and value sets, intersected."""
    parts: list[set[Concept]] = []
    system = include.get("system")
    if isinstance(system, str):
        if include.get("concept"):
            parts.append({(system, c["code"]) for c in include["concept"] if isinstance(c.get("code"), str)})
        else:
            tree = hierarchy(system)
            codes = set(tree.codes)
            for f in include.get("filter", ()):
                codes &= _filter(tree, f)
            parts.append({(system, c) for c in codes})
    for url in include.get("valueSet", ()):
        parts.append(_expand(url, depth + 1))
    if not parts:
        return set()
    out = parts[0]
    for part in parts[1:]:
        out = out & part
    return out


def _filter(tree: Hierarchy, f: dict[str, Any]) -> set[str]:
    prop, op, value = f.get("property"), f.get("op"), f.get("value", "")
    everything = set(tree.codes)
    if prop in ("concept", "code"):
        if op == "is-a":
            return tree.below(value)
        if op == "descendent-of":
            return tree.below(value) - {value}
        if op == "is-not-a":
            return everything - tree.below(value)
        if op == "generalizes":
            return tree.above(value)
        if op == "=":
            return {value} & everything
        if op in ("in", "not-in"):
            listed = {v.strip() for v in value.split(",")}
            return listed & everything if op == "in" else everything - listed
        if op == "regex":
            pattern = re.compile(value)
            return {c for c in everything if pattern.fullmatch(c)}
    elif op == "=" and isinstance(prop, str):
        return {c for c in everything if value in tree.properties.get(c, {}).get(prop, ())}
    raise TerminologyError(
        f"The value set filter {prop} {op} {value} on {tree.url} is not supported by this server"
    )
