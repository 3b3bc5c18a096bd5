"""The values a search parameter takes in a resource, from its FHIRPath expression.

https://hl7.org/fhir/R4/searchparameter.html#expression -- each expression is compiled once
per resource type (lazily, then cached) into an `Extractor`:

- a fast path for the shapes almost every R4 parameter uses: dotted paths over the
  StructureDefinitions (choice elements `value[x]` included), `(X as T)`, `X.as(T)`,
  `X.ofType(T)`, `X.where(resolve() is T)`, `X.where(field='literal')` and `%resource`;
- fhirpathpy for anything else (`Bundle.entry[0].resource`, `exists() and ... != false`),
  compiled once, with a `resolve()` that returns a stub typed by the reference string.

Every value comes out `Typed` (its FHIR type is known from the definitions), so converters
do not guess. An expression that cannot be compiled, or a value that cannot be read, is
logged and skipped: a strange resource never breaks a write.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from fhir_api.store.structure import Element, structures
from fhir_search import references
from fhir_search.registry import SearchParam, split_top_level, split_union

logger = logging.getLogger(__name__)

# FHIRPath `as Quantity` also accepts the Quantity profiles that have their own JSON names.
_SUBTYPES = {
    "quantity": {"quantity", "age", "duration", "count", "distance", "simplequantity", "moneyquantity"},
    "resource": None,  # any resource
}
_RESOURCE_TYPES = ("Resource", "DomainResource")


@dataclass(frozen=True, slots=True)
class Typed:
    """One value found by an expression, with its FHIR type."""

    type: str  # "HumanName", "code", "Reference", "Observation" (a resource)...
    value: Any  # the JSON value
    node: str  # where the children of the value are defined (a type or a backbone path)
    element: Element | None = None  # the element it came from, when known (for bindings)


class Context:
    """The resource being indexed, with what `resolve()` and `%resource` need."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.resource_type: str = resource.get("resourceType", "")
        self._contained: dict[str, str] | None = None

    @cached_property
    def root(self) -> Typed:
        return Typed(self.resource_type, self.resource, self.resource_type)

    @property
    def contained(self) -> dict[str, str]:
        if self._contained is None:
            self._contained = {
                c["id"]: c.get("resourceType", "")
                for c in self.resource.get("contained") or ()
                if isinstance(c, dict) and isinstance(c.get("id"), str)
            }
        return self._contained

    def reference_type(self, value: Any) -> str | None:
        """The type a Reference (or canonical string) points at, as `resolve()` would see it."""
        ref = value.get("reference") if isinstance(value, dict) else value
        if isinstance(ref, str):
            return references.target_type(ref, self.contained)
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return value["type"]
        return None


Extractor = Callable[[Context, list[Typed] | None], list[Typed]]


# -- the fast path -------------------------------------------------------------------------

_WRAPPED_AS = re.compile(r"\((?P<inner>.+) as (?P<type>[A-Za-z]+)\)(?P<rest>.*)\Z", re.S)
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FUNCTION_TYPE = re.compile(r"(?:as|ofType)\((?P<type>[A-Za-z]+)\)\Z")
_RESOLVE_IS = re.compile(r"where\(resolve\(\) is (?P<type>[A-Za-z]+)\)\Z")
_WHERE_EQ = re.compile(r"where\((?P<field>[A-Za-z]+) ?= ?'(?P<literal>[^'\\]*)'\)\Z")


def _segments(path: str) -> list[str] | None:
    """Split a path on dots outside parentheses and quotes; None if unbalanced."""
    return split_top_level(path, ".")


def _compile_steps(expression: str, first: str | None) -> list[tuple] | None:
    """Steps for a path the fast path understands, or None.

    `first` is the resource type a top-level path must start with; None for a path relative
    to an element (composite components).
    """
    expression = expression.strip()
    m = _WRAPPED_AS.match(expression)
    if m:
        inner = _compile_steps(m.group("inner"), first)
        rest = m.group("rest")
        if inner is None or (rest and not rest.startswith(".")):
            return None
        tail = _compile_steps(rest[1:], None) if rest else []
        if tail is None:
            return None
        return inner + [("as", m.group("type"))] + tail
    parts = _segments(expression)
    if not parts or any(not p for p in parts):
        return None
    steps: list[tuple] = []
    if parts[0] == "%resource":
        steps.append(("resource",))
        parts = parts[1:]
    elif first is not None:
        if parts[0] != first:
            return None
        parts = parts[1:]
    for part in parts:
        if _IDENT.match(part):
            steps.append(("child", part))
        elif m := _FUNCTION_TYPE.match(part):
            steps.append(("as", m.group("type")))
        elif m := _RESOLVE_IS.match(part):
            steps.append(("resolve_is", m.group("type")))
        elif m := _WHERE_EQ.match(part):
            steps.append(("where_eq", m.group("field"), m.group("literal")))
        else:
            return None
    return steps


def _typed(value: Any, type_code: str, element: Element | None) -> list[Typed]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if v is None:
            continue
        if type_code in _RESOURCE_TYPES and isinstance(v, dict) and "resourceType" in v:
            out.append(Typed(v["resourceType"], v, v["resourceType"], element))
        elif element is not None:
            out.append(Typed(type_code, v, element.child_node(type_code), element))
        else:
            out.append(Typed(type_code, v, type_code, None))
    return out


@cache
def _json_keys(node: str, name: str) -> tuple[tuple[str, str, Element], ...]:
    """(JSON key, type, element) for a child: one key, or one per type of a choice element."""
    element = structures().children(node).get(name)
    if element is None:
        return ()
    if element.choice:
        return tuple((name + t[0].upper() + t[1:], t, element) for t in element.types)
    return ((name, element.types[0] if element.types else "Element", element),)


def _child(nodes: list[Typed], name: str) -> list[Typed]:
    out: list[Typed] = []
    for node in nodes:
        if not isinstance(node.value, dict):
            continue
        for key, type_code, element in _json_keys(node.node, name):
            v = node.value.get(key)
            if v is not None:
                out.extend(_typed(v, type_code, element))
    return out


def _is_type(value_type: str, wanted: str) -> bool:
    value_type, wanted = value_type.lower(), wanted.lower()
    if value_type == wanted:
        return True
    subtypes = _SUBTYPES.get(wanted, ())
    if subtypes is None:  # "Resource": any resource
        return value_type[:1].isalpha() and value_type in {t.lower() for t in _resource_types()}
    return value_type in subtypes


@cache
def _resource_types() -> frozenset[str]:
    from fhir_api.store.structure import resource_types

    return resource_types()


def _run(steps: list[tuple], context: Context, start: list[Typed]) -> list[Typed]:
    nodes = start
    for step in steps:
        kind = step[0]
        if kind == "child":
            nodes = _child(nodes, step[1])
        elif kind == "as":
            nodes = [n for n in nodes if _is_type(n.type, step[1])]
        elif kind == "resolve_is":
            nodes = [n for n in nodes if context.reference_type(n.value) == step[1]]
        elif kind == "where_eq":
            nodes = [n for n in nodes if isinstance(n.value, dict) and n.value.get(step[1]) == step[2]]
        elif kind == "resource":
            nodes = [context.root]
        if not nodes:
            break
    return nodes


def _static_check(steps: list[tuple], start_node: str) -> bool:
    """Do the child names exist in the definitions? (else the expression is not a plain path)."""
    nodes = {start_node}
    for step in steps:
        if step[0] == "resource":
            return True  # the rest is checked against the resource at run time
        if step[0] != "child":
            continue
        following = set()
        for node in nodes:
            element = structures().children(node).get(step[1])
            if element is not None:
                following.update(element.child_node(t) for t in element.types or ("Element",))
        if not following:
            return False
        nodes = following
    return True


# -- the FHIRPath engine, for everything else ----------------------------------------------


def _fhirpath_resolve(inputs: list[Any]) -> list[Any]:
    """`resolve()` for extraction: a stub resource typed by the reference, enough for `is T`."""
    from fhirpathpy.engine.nodes import ResourceNode

    out = []
    for value in inputs:
        ref = value.get("reference") if isinstance(value, dict) else value
        kind = references.target_type(ref) if isinstance(ref, str) else None
        if kind:
            out.append(ResourceNode.create_node({"resourceType": kind}))
    return out


@cache
def _fhirpath_model() -> dict:
    from fhirpathpy.models import models

    return models["r4"]


def _type_of_path(path: str) -> tuple[str, str, Element | None] | None:
    """(type, node, element) for a fhirpathpy node path such as "Patient.name" or "Quantity"."""
    parts = path.split(".")
    node, type_code, element = parts[0], parts[0], None
    for name in parts[1:]:
        element = structures().children(node).get(name)
        if element is None or len(element.types) != 1:
            return None
        type_code = element.types[0]
        node = element.child_node(type_code)
    return type_code, node, element


def _from_fhirpath(item: Any) -> Typed | None:
    from fhirpathpy.engine.nodes import FP_Type, ResourceNode

    if isinstance(item, ResourceNode):
        data = item.data
        if isinstance(data, dict) and "resourceType" in data:
            return Typed(data["resourceType"], data, data["resourceType"])
        found = _type_of_path(item.path) if isinstance(item.path, str) else None
        if found is not None:
            type_code, node, element = found
            return Typed(type_code, data, node, element)
        return _guess(data)
    if isinstance(item, FP_Type):
        return Typed("dateTime", str(item), "dateTime")
    return _guess(item)


def _guess(value: Any) -> Typed | None:
    """The type of a value fhirpathpy gave back without one, from its JSON shape."""
    if isinstance(value, bool):
        return Typed("boolean", value, "boolean")
    if isinstance(value, (int, float)):
        return Typed("decimal", value, "decimal")
    if isinstance(value, str):
        return Typed("string", value, "string")
    if isinstance(value, dict):
        keys = set(value)
        for type_code, marker in (
            ("Reference", {"reference"}), ("CodeableConcept", {"coding"}), ("Quantity", {"value", "unit"}),
            ("Quantity", {"value", "code"}), ("Identifier", {"value", "system"}), ("Coding", {"code"}),
            ("Period", {"start"}), ("Period", {"end"}), ("HumanName", {"family"}), ("HumanName", {"given"}),
            ("Address", {"city"}), ("Address", {"line"}),
        ):
            if marker <= keys:
                return Typed(type_code, value, type_code)
    return None


def _fhirpath_compile(expression: str) -> Callable[..., Any]:
    import fhirpathpy

    options = {
        "returnRawData": True,  # nodes keep their type path, so values come out typed
        "userInvocationTable": {"resolve": {"fn": _fhirpath_resolve, "arity": {0: []}}},
    }
    return fhirpathpy.compile(expression, _fhirpath_model(), options)


def _fhirpath_extractor(expression: str) -> Extractor | None:
    try:
        compiled = _fhirpath_compile(expression)
    except Exception:  # noqa: BLE001 -- an expression fhirpathpy cannot parse is skipped
        logger.warning("search expression %r cannot be compiled; it will not be indexed", expression)
        return None

    def extract(context: Context, start: list[Typed] | None = None) -> list[Typed]:
        out = []
        for origin in start or [context.root]:
            for item in compiled(origin.value, {"resource": context.resource}):
                typed = _from_fhirpath(item)
                if typed is not None:
                    out.append(typed)
        return out

    return extract


# -- compiling -----------------------------------------------------------------------------


def compile_expression(expression: str, root: str, relative: bool = False) -> Extractor:
    """An extractor for a (union) expression, top-level from resource type `root`, or
    relative to an element whose children are defined at node `root`."""
    parts: list[Extractor] = []
    for part in split_union(expression):
        steps = _compile_steps(part, None if relative else root)
        if steps is not None and _static_check(steps, root):
            parts.append(_fast(steps))
            continue
        engine = _fhirpath_extractor(part)
        if engine is not None:
            parts.append(engine)

    def extract(context: Context, start: list[Typed] | None = None) -> list[Typed]:
        out: list[Typed] = []
        for part in parts:
            try:
                out.extend(part(context, start))
            except Exception:  # noqa: BLE001 -- a value that breaks an expression is skipped
                logger.warning("could not evaluate %r on %s", expression, context.resource_type,
                               exc_info=True)
        return out

    return extract


def expression_problem(expression: str, root: str) -> str | None:
    """Why an expression cannot be evaluated on resources of type `root`, or None if it can.

    Checks a SearchParameter before it is stored: fhirpathpy parses leniently and reports
    an unknown function only when it runs, so the expression is also run once on an
    empty resource of the type.
    """
    for part in split_union(expression):
        steps = _compile_steps(part, root)
        if steps is not None and _static_check(steps, root):
            continue
        try:
            _fhirpath_compile(part)({"resourceType": root}, {"resource": {"resourceType": root}})
        except Exception as exc:  # noqa: BLE001 -- fhirpathpy raises plain Exceptions
            return f"{part!r} cannot be evaluated: {exc}"
    return None


def _fast(steps: list[tuple]) -> Extractor:
    def extract(context: Context, start: list[Typed] | None = None) -> list[Typed]:
        return _run(steps, context, start if start is not None else [context.root])

    return extract


_cache: dict[tuple[str, str], Extractor] = {}


def extractor(param: SearchParam, resource_type: str) -> Extractor:
    """The compiled extractor of one parameter for one resource type (compiled on first use)."""
    key = (param.url or param.code, resource_type)
    found = _cache.get(key)
    if found is None:
        found = compile_expression(param.expression_for(resource_type), resource_type)
        _cache[key] = found
    return found


def component_extractor(param: SearchParam, index: int, node: str) -> Extractor:
    """The extractor of a composite's component, relative to the composite's element."""
    key = (f"{param.url or param.code}#{index}", node)
    found = _cache.get(key)
    if found is None:
        found = compile_expression(param.components[index][1], node, relative=True)
        _cache[key] = found
    return found


def forget(param: SearchParam) -> None:
    """Drop the compiled extractors of a parameter (after a SearchParameter changes)."""
    prefix = param.url or param.code
    for key in [k for k in _cache if k[0] == prefix or k[0].startswith(prefix + "#")]:
        del _cache[key]
