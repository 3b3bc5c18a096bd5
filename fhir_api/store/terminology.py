"""Value set expansion over code system hierarchies: the engine, and the R4 sets the project ships.

https://hl7.org/fhir/R4/valueset.html#compose and https://hl7.org/fhir/R4/codesystem.html#hierarchy
-- `compose.include`/`exclude` with concept lists, whole code systems, other value sets, and
filters on the hierarchy (`is-a`, `descendent-of`, `is-not-a`, `generalizes`), on codes (`=`,
`in`, `not-in`, `regex`) and `=` on concept properties; a value set with no compose uses its
`expansion.contains`. Hierarchies are the nesting of CodeSystem.concept plus `parent` /
`subsumedBy` properties.

The engine does not know where definitions come from: an `Expander` is handed a function that
finds a ValueSet by reference and one that gives a code system's `Hierarchy`. Validation of
required bindings uses the shipped R4 ones (`shipped_expander`); search and the terminology
operations add the stored ones (fhir_search.terminology).
"""
from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson

from fhir_api.store.structure import DEFINITIONS

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


def property_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def hierarchy_of(cs: dict[str, Any]) -> Hierarchy:
    """The hierarchy of a CodeSystem resource that lists its codes."""
    if cs.get("content") not in (None, "complete", "fragment"):
        raise TerminologyError(f"The code system {cs.get('url')} does not list its codes (content={cs['content']})")
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
                values = {property_text(v) for k, v in prop.items() if k.startswith("value")}
                props.setdefault(prop.get("code", ""), set()).update(values)
                if prop.get("code") in ("parent", "subsumedBy"):
                    tree.parents[code].update(values)
            walk(concept.get("concept", ()), code)

    walk(cs.get("concept", ()), None)
    for code, parents in tree.parents.items():
        for parent in parents:
            tree.children.setdefault(parent, set()).add(code)
    return tree


class Expander:
    """Expands value sets, given where to find value sets and code system hierarchies."""

    def __init__(self, find_value_set: Callable[[str], dict[str, Any] | None],
                 hierarchy: Callable[[str], Hierarchy]) -> None:
        self.find_value_set = find_value_set
        self.hierarchy = hierarchy

    def expand(self, reference: str, depth: int = 0) -> set[Concept]:
        if depth > MAX_DEPTH:
            raise TerminologyError(f"The value set {reference} includes value sets too deeply (a cycle?)")
        vs = self.find_value_set(reference)
        if vs is None:
            raise TerminologyError(f"The value set {reference} is not known to this server")
        return self.expand_resource(vs, depth)

    def expand_resource(self, vs: dict[str, Any], depth: int = 0) -> set[Concept]:
        compose = vs.get("compose")
        if compose:
            out: set[Concept] = set()
            for include in compose.get("include", ()):
                out |= self._include(include, depth)
            for exclude in compose.get("exclude", ()):
                out -= self._include(exclude, depth)
            return out
        contains = (vs.get("expansion") or {}).get("contains")
        if contains is not None:
            return set(_contained(contains))
        raise TerminologyError(f"The value set {vs.get('url')} has neither a compose nor an expansion")

    def _include(self, include: dict[str, Any], depth: int) -> set[Concept]:
        """One compose.include (or exclude): its system part and value sets, intersected."""
        parts: list[set[Concept]] = []
        system = include.get("system")
        if isinstance(system, str):
            if include.get("concept"):
                parts.append({(system, c["code"]) for c in include["concept"] if isinstance(c.get("code"), str)})
            else:
                tree = self.hierarchy(system)
                codes = set(tree.codes)
                for f in include.get("filter", ()):
                    codes &= filter_codes(tree, f)
                parts.append({(system, c) for c in codes})
        for url in include.get("valueSet", ()):
            parts.append(self.expand(url, depth + 1))
        if not parts:
            return set()
        out = parts[0]
        for part in parts[1:]:
            out = out & part
        return out


def _contained(contains: list[dict[str, Any]]) -> Iterable[Concept]:
    for item in contains:
        if isinstance(item.get("system"), str) and isinstance(item.get("code"), str):
            yield item["system"], item["code"]
        yield from _contained(item.get("contains", ()))


def filter_codes(tree: Hierarchy, f: dict[str, Any]) -> set[str]:
    """The codes of `tree` that pass one compose filter."""
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
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise TerminologyError(f"The regex filter {value!r} is not a valid regular expression: {exc}")
            return {c for c in everything if pattern.fullmatch(c)}
    elif op == "=" and isinstance(prop, str):
        return {c for c in everything if value in tree.properties.get(c, {}).get(prop, ())}
    raise TerminologyError(
        f"The value set filter {prop} {op} {value} on {tree.url} is not supported by this server"
    )


# -- the R4 definitions the project ships --------------------------------------------------


@cache
def shipped() -> dict[str, dict[str, dict[str, Any]]]:
    """The R4 value sets and code systems the project ships, by type and URL."""
    raw = gzip.decompress((DEFINITIONS / "valuesets.json.gz").read_bytes())
    out: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in RESOURCE_TYPES}
    for entry in orjson.loads(raw)["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") in out and resource.get("url"):
            out[resource["resourceType"]][resource["url"]] = resource
    return out


@cache
def _shipped_hierarchy(system: str) -> Hierarchy:
    cs = shipped()["CodeSystem"].get(system)
    if cs is None:
        raise TerminologyError(f"The code system {system} is not known to this server")
    return hierarchy_of(cs)


@cache
def shipped_expander() -> Expander:
    return Expander(lambda ref: shipped()["ValueSet"].get(ref.split("|", 1)[0]), _shipped_hierarchy)


@dataclass(frozen=True, slots=True)
class CodeSet:
    """The codes of a value set, for checking a binding: (system, code) pairs and bare codes."""

    url: str
    concepts: frozenset[Concept]
    codes: frozenset[str]


@cache
def bound_codes(value_set: str) -> CodeSet | None:
    """The codes of a shipped R4 value set, or None when they cannot be listed here.

    None means the binding cannot be checked (a value set over SNOMED CT, LOINC, BCP-47 language
    tags, MIME types or UCUM units, whose codes R4 does not ship): it is not an error.
    """
    try:
        concepts = shipped_expander().expand(value_set)
    except TerminologyError:
        return None
    return CodeSet(value_set.split("|", 1)[0], frozenset(concepts), frozenset(code for _, code in concepts))
