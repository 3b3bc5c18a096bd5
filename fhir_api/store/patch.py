"""The two patch formats of the `patch` interaction: JSON Patch and FHIRPath Patch.

https://hl7.org/fhir/R4/http.html#patch -- JSON Patch is RFC 6902 (pointers per RFC 6901);
FHIRPath Patch is https://hl7.org/fhir/R4/fhirpatch.html (a Parameters resource of
`operation`s). Both work on a deep copy and return it, so a failing patch leaves nothing
half-applied. A malformed patch document raises `BadRequest`; a well-formed patch that
cannot be applied to this resource raises `Unprocessable` (422). Validating the result
as a resource is the writer's job, not this module's.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import re2
from antlr4 import CommonTokenStream, InputStream
from django.conf import settings
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy import evaluate
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models as fhirpath_models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhir_api.store import jsonio
from fhir_api.store.errors import BadRequest, TooCostly, Unprocessable
from fhir_api.store.structure import JSON_BOOLEAN, JSON_DECIMAL, JSON_INTEGER, Element, structures

# ======================================================================================
# JSON Patch (RFC 6902)
# ======================================================================================

_JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
# RFC 6901: "~" is only ever followed by "0" or "1".
_BAD_ESCAPE = re.compile(r"~(?![01])")
# RFC 6901 array index: "0" or digits without a leading zero.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def apply_json_patch(resource: dict, operations: list) -> dict:
    """Apply an RFC 6902 document to a copy of `resource`; https://hl7.org/fhir/R4/http.html#patch."""
    if not isinstance(operations, list):
        raise BadRequest("A JSON Patch document must be a JSON array of operations")
    _check_operation_count(len(operations))
    # Check the whole document first: a malformed operation late in the list is a 400,
    # even when an earlier operation would have failed to apply (422).
    checked = [_check_json_op(op, n) for n, op in enumerate(operations)]
    doc: Any = copy.deepcopy(resource)
    # An upper bound of the patched document's size, checked before each operation adds
    # anything: 21 `copy`s of /extension onto itself would double it 21 times (0.9 GB).
    size = len(jsonio.dumps(doc))
    for n, (op, path, source, value) in enumerate(checked):
        try:
            if op in ("add", "replace", "copy"):
                size += len(jsonio.dumps(_json_get(doc, source) if op == "copy" else value))
                _check_size(size, n)
            doc = _apply_json_op(doc, op, path, source, value)
        except _PointerError as e:
            raise Unprocessable(f"JSON Patch operation {n} ({op}) cannot be applied: {e}") from None
    if not isinstance(doc, dict):
        raise Unprocessable("JSON Patch result is not a JSON object")
    return doc


class _PointerError(Exception):
    """A pointer that is well-formed but does not fit this document."""


def _check_json_op(op: Any, n: int) -> tuple[str, list[str], list[str] | None, Any]:
    if not isinstance(op, dict):
        raise BadRequest(f"JSON Patch operation {n} is not an object")
    name = op.get("op")
    if not isinstance(name, str) or name not in _JSON_PATCH_OPS:
        raise BadRequest(f"JSON Patch operation {n} has an unknown op {name!r}")
    if "path" not in op:
        raise BadRequest(f"JSON Patch operation {n} ({name}) has no 'path'")
    path = _parse_pointer(op["path"], n)
    source = None
    if name in ("move", "copy"):
        if "from" not in op:
            raise BadRequest(f"JSON Patch operation {n} ({name}) has no 'from'")
        source = _parse_pointer(op["from"], n)
    if name in ("add", "replace", "test") and "value" not in op:
        # `"value": null` is a legal value; only a missing member is an error.
        raise BadRequest(f"JSON Patch operation {n} ({name}) has no 'value'")
    return name, path, source, op.get("value")


def _parse_pointer(pointer: Any, n: int) -> list[str]:
    if not isinstance(pointer, str):
        raise BadRequest(f"JSON Patch operation {n}: a JSON Pointer must be a string")
    if pointer == "":
        return []
    if not pointer.startswith("/") or _BAD_ESCAPE.search(pointer):
        raise BadRequest(f"JSON Patch operation {n}: invalid JSON Pointer {pointer!r}")
    # Order matters (RFC 6901 section 4): "~01" is "~1" literally, not "/".
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _apply_json_op(doc: Any, op: str, path: list[str], source: list[str] | None, value: Any) -> Any:
    if op == "add":
        return _json_add(doc, path, copy.deepcopy(value))
    if op == "remove":
        _json_remove(doc, path)
        return doc
    if op == "replace":
        if not path:
            return copy.deepcopy(value)
        parent, token = _json_get(doc, path[:-1]), path[-1]
        if isinstance(parent, list):
            parent[_list_index(parent, token)] = copy.deepcopy(value)
        elif isinstance(parent, dict) and token in parent:
            parent[token] = copy.deepcopy(value)
        else:
            raise _PointerError(f"no value at {_pointer(path)}")
        return doc
    if op == "test":
        if not _json_equal(_json_get(doc, path), value):
            raise _PointerError(f"test failed: the value at {_pointer(path)} differs")
        return doc
    assert source is not None  # checked: move and copy always have `from`
    if op == "move":
        if source == path:
            _json_get(doc, source)  # still must exist
            return doc
        if path[: len(source)] == source:
            raise _PointerError(f"cannot move {_pointer(source)} into its own child {_pointer(path)}")
        moved = _json_remove(doc, source)
        return _json_add(doc, path, moved)
    return _json_add(doc, path, copy.deepcopy(_json_get(doc, source)))  # copy


def _json_get(doc: Any, path: list[str]) -> Any:
    for token in path:
        if isinstance(doc, dict):
            if token not in doc:
                raise _PointerError(f"no member {token!r}")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_list_index(doc, token)]
        else:
            raise _PointerError(f"cannot step into a scalar with {token!r}")
    return doc


def _json_add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value  # RFC 6902 4.1: adding at the root replaces the document
    parent, token = _json_get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        if token == "-":
            parent.append(value)
        else:
            parent.insert(_list_index(parent, token, allow_end=True), value)
    else:
        raise _PointerError(f"the parent of {_pointer(path)} is not an object or array")
    return doc


def _json_remove(doc: Any, path: list[str]) -> Any:
    if not path:
        raise _PointerError("cannot remove the whole document")
    parent, token = _json_get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise _PointerError(f"no value at {_pointer(path)}")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, token))
    raise _PointerError(f"the parent of {_pointer(path)} is not an object or array")


def _list_index(items: list, token: str, *, allow_end: bool = False) -> int:
    if not _ARRAY_INDEX.fullmatch(token):
        # "-" names the slot after the last element: only `add` may use it.
        raise _PointerError(f"{token!r} is not a usable array index here")
    index = int(token)
    if index > len(items) or (index == len(items) and not allow_end):
        raise _PointerError(f"array index {index} is out of bounds (length {len(items)})")
    return index


def _pointer(path: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in path)


def _json_equal(a: Any, b: Any) -> bool:
    """RFC 6902 4.6 equality: Python's `True == 1` and `1 == 1.0` rules are not JSON's."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# ======================================================================================
# FHIRPath Patch
# ======================================================================================

_FHIRPATH_MODEL = fhirpath_models["r4"]


# -- matches() and replaceMatches() in linear time --------------------------------------------
# fhirpathpy runs them with Python's backtracking `re`: `matches('^(a+)+$')` on 26 a's and a
# "!" takes seconds and doubles per character. RE2 (google-re2) takes time linear in the
# input for every pattern; patterns it cannot run (backreferences, lookaround) are a 422.


def _re2(pattern: Any, flags: int = 0) -> Any:
    if not isinstance(pattern, str):
        raise Unprocessable("matches()/replaceMatches() take a string pattern")
    options = re2.Options()
    options.dot_nl = bool(flags)
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise Unprocessable(f"the regular expression {pattern[:100]} is not supported: {exc}") from None


def _single_string(inputs: list[Any]) -> str | None:
    if len(inputs) != 1 or not isinstance(inputs[0], str):
        return None
    return inputs[0]


def _matches(inputs: list[Any], pattern: Any) -> Any:
    text = _single_string(inputs)
    if text is None or not pattern:
        return []
    return _re2(pattern, 1).search(text) is not None


def _replace_matches(inputs: list[Any], pattern: Any, substitution: Any) -> Any:
    text = _single_string(inputs)
    if text is None or not isinstance(substitution, str):
        return []
    # FHIRPath writes groups as $1; RE2's substitution syntax is \1.
    return _re2(pattern).sub(re.sub(r"\$(\d+)", r"\\\1", substitution), text)


_LINEAR_TIME_REGEX_FUNCTIONS = {
    "matches": {"fn": _matches, "arity": {1: ["String"]}, "nullable_input": True},
    "replaceMatches": {"fn": _replace_matches, "arity": {2: ["String", "String"]}, "nullable_input": True},
}
# Parts each operation type needs (https://hl7.org/fhir/R4/fhirpatch.html#parameters).
_REQUIRED_PARTS = {
    "add": ("path", "name", "value"),
    "insert": ("path", "value", "index"),
    "delete": ("path",),
    "replace": ("path", "value"),
    "move": ("path", "source", "destination"),
}
_KNOWN_PARTS = frozenset({"type", "path", "name", "value", "index", "source", "destination"})
# Quantity and its R4 profiles share one JSON shape; a client may send either name.
_QUANTITIES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"}
)
_RESOURCE_TYPES = frozenset({"Resource", "DomainResource"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|`[^`]+`")


@dataclass(frozen=True, slots=True)
class _Operation:
    type: str
    path: str
    name: str | None
    value: dict | None  # the `value` part itself: value[x], `resource` or nested `part`s
    index: int | None
    source: int | None
    destination: int | None


def apply_fhirpath_patch(resource: dict, parameters: dict) -> dict:
    """Apply a FHIRPath Patch Parameters resource to a copy; https://hl7.org/fhir/R4/fhirpatch.html."""
    operations = _parse_parameters(parameters)  # all-or-nothing: reject a bad document up front
    _check_operation_count(len(operations))
    working = copy.deepcopy(resource)
    for n, op in enumerate(operations):
        try:
            _APPLY[op.type](working, op)
        except Unprocessable as e:
            where = f"FHIRPath Patch operation {n} ({op.type} {op.path})"
            raise Unprocessable(f"{where}: {e.diagnostics}") from None
    _prune(working)
    _check_size(len(jsonio.dumps(working)), len(operations) - 1)
    return working


def _check_operation_count(count: int) -> None:
    limit = settings.FHIR_PATCH_MAX_OPERATIONS
    if count > limit:
        raise TooCostly(f"The patch has {count} operations; this server's limit is {limit} (FHIR_PATCH_MAX_OPERATIONS)")


def _check_size(size: int, n: int) -> None:
    limit = settings.FHIR_PATCH_MAX_BYTES
    if size > limit:
        raise TooCostly(f"Patch operation {n} would make the resource larger than this server's limit of "
                        f"{limit} bytes (FHIR_PATCH_MAX_BYTES)")


# -- the Parameters document ------------------------------------------------------------


def _parse_parameters(parameters: Any) -> list[_Operation]:
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise BadRequest("A FHIRPath Patch document must be a Parameters resource")
    params = parameters.get("parameter")
    if not isinstance(params, list) or not params:
        raise BadRequest("A FHIRPath Patch document needs at least one 'operation' parameter")
    return [_parse_operation(p, n) for n, p in enumerate(params)]


def _parse_operation(param: Any, n: int) -> _Operation:
    if not isinstance(param, dict) or param.get("name") != "operation":
        raise BadRequest(f"FHIRPath Patch parameter {n} is not named 'operation'")
    if not isinstance(param.get("part"), list):
        raise BadRequest(f"FHIRPath Patch operation {n} has no parts")
    parts: dict[str, dict] = {}
    for part in param["part"]:
        name = part.get("name") if isinstance(part, dict) else None
        if name not in _KNOWN_PARTS:
            raise BadRequest(f"FHIRPath Patch operation {n} has an unknown part {name!r}")
        if name in parts:
            raise BadRequest(f"FHIRPath Patch operation {n} repeats the part {name!r}")
        parts[name] = part
    op_type = _string_part(parts, "type", n, ("valueCode", "valueString"))
    if op_type not in _REQUIRED_PARTS:
        raise BadRequest(f"FHIRPath Patch operation {n} has an unknown type {op_type!r}")
    for name in _REQUIRED_PARTS[op_type]:
        if name not in parts:
            raise BadRequest(f"FHIRPath Patch operation {n} ({op_type}) has no '{name}' part")
    path = _string_part(parts, "path", n, ("valueString",))
    assert path is not None
    _check_fhirpath_syntax(path, n)
    if "value" in parts:
        _check_value_part(parts["value"], n)
    return _Operation(
        type=op_type,
        path=path,
        name=_string_part(parts, "name", n, ("valueString", "valueCode")),
        value=parts.get("value"),
        index=_integer_part(parts, "index", n),
        source=_integer_part(parts, "source", n),
        destination=_integer_part(parts, "destination", n),
    )


def _string_part(parts: dict[str, dict], name: str, n: int, keys: tuple[str, ...]) -> str | None:
    part = parts.get(name)
    if part is None:
        return None
    for key in keys:
        if isinstance(part.get(key), str) and part[key]:
            return part[key]
    raise BadRequest(f"FHIRPath Patch operation {n}: part '{name}' needs a non-empty {keys[0]}")


def _integer_part(parts: dict[str, dict], name: str, n: int) -> int | None:
    part = parts.get(name)
    if part is None:
        return None
    for key in ("valueInteger", "valueUnsignedInt", "valuePositiveInt"):
        value = part.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    raise BadRequest(f"FHIRPath Patch operation {n}: part '{name}' needs a non-negative valueInteger")


def _check_value_part(part: dict, n: int) -> None:
    """Reject a malformed value before applying anything, so a bad document is always a 400."""
    value_keys = [k for k in part if k.startswith("value")]
    sub_parts = part.get("part")
    if len(value_keys) + ("resource" in part) + (sub_parts is not None) != 1:
        raise BadRequest(
            f"FHIRPath Patch operation {n}: part {part.get('name')!r} needs exactly one of"
            " value[x], resource or part"
        )
    if value_keys:
        _check_json_shape(_type_of_suffix(value_keys[0][len("value") :]), part[value_keys[0]])
    elif "resource" in part:
        resource = part["resource"]
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise BadRequest(f"FHIRPath Patch operation {n}: part {part.get('name')!r} has no valid resource")
    else:
        if not isinstance(sub_parts, list) or not sub_parts:
            raise BadRequest(f"FHIRPath Patch operation {n}: part {part.get('name')!r} has no parts")
        for sub in sub_parts:
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str) or not sub["name"]:
                raise BadRequest(f"FHIRPath Patch operation {n}: every part of a value needs a name")
            _check_value_part(sub, n)


class _RaiseOnSyntaxError(ErrorListener):
    # ANTLR calls this hook by its Java-style name.
    def syntaxError(  # noqa: N802
        self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any  # noqa: N803
    ) -> None:
        raise ValueError(f"column {column}: {msg}")


def _check_fhirpath_syntax(expression: str, n: int) -> None:
    """fhirpathpy's own parser recovers silently from syntax errors; run its grammar strictly."""
    listener = _RaiseOnSyntaxError()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    try:
        parser.entireExpression()
    except Exception as e:  # ValueError from the listener, or a lexer failure
        raise BadRequest(f"FHIRPath Patch operation {n}: invalid FHIRPath {expression!r}: {e}") from None


# -- finding elements -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where an element sits: `parent[key]`, or `parent[key][index]` for a list item."""

    parent: dict[str, Any]
    parent_node: str | None  # structure node of `parent` ("Patient", "HumanName", "Patient.contact")
    key: str  # the JSON name, choice suffix included ("valueQuantity")
    index: int | None

    def get(self) -> Any:
        value = self.parent[self.key]
        return value if self.index is None else value[self.index]

    def element(self) -> Element | None:
        found = structures().child(self.parent_node, self.key) if self.parent_node else None
        return found[0] if found else None

    def identity(self) -> tuple[int, str, int | None]:
        return id(self.parent), self.key, self.index


@dataclass(frozen=True, slots=True)
class _Hit:
    value: Any  # the element's JSON value in the working copy (a dict for complex elements)
    node: str | None  # structure node of a complex value, None for a primitive
    slot: _Slot | None  # None for the resource itself


class _View:
    """A copy of the working resource for fhirpathpy to read, mapped back to the working dicts.

    fhirpathpy returns the very dicts it was given, so complex results are found by identity.
    Primitive-extension keys (`_given`) are left out of the copy: fhirpathpy would otherwise
    append them to the values they shadow (`given[2]` could name an extension of `given[0]`).
    """

    def __init__(self, working: dict[str, Any]) -> None:
        self.working = working
        self.resource_type = working.get("resourceType")
        self.origin: dict[int, _Hit] = {}
        self.tree = self._copy(working, self.resource_type, None)

    def _copy(self, data: dict[str, Any], node: str | None, slot: _Slot | None) -> dict[str, Any]:
        shadow: dict[str, Any] = {}
        # Keeping `shadow` alive in the tree keeps its id() from being reused.
        self.origin[id(shadow)] = _Hit(data, node, slot)
        for key, value in data.items():
            if key.startswith("_"):
                continue
            if isinstance(value, list):
                shadow[key] = [
                    self._copy(item, _child_node(node, key, item), _Slot(data, node, key, i))
                    if isinstance(item, dict)
                    else item
                    for i, item in enumerate(value)
                ]
            elif isinstance(value, dict):
                shadow[key] = self._copy(value, _child_node(node, key, value), _Slot(data, node, key, None))
            else:
                shadow[key] = value
        return shadow

    def evaluate(self, expression: str) -> list[Any]:
        context = {"resource": self.tree, "rootResource": self.tree}
        options = {"returnRawData": True, "userInvocationTable": _LINEAR_TIME_REGEX_FUNCTIONS}
        try:
            return evaluate(self.tree, expression, context, _FHIRPATH_MODEL, options)
        except Exception as e:  # fhirpathpy raises bare Exceptions ("Not implemented: resolve")
            raise Unprocessable(f"cannot evaluate {expression!r}: {e}") from None

    def locate(self, expression: str) -> list[_Hit]:
        """The elements `expression` selects, each with its place in the working copy."""
        results = self.evaluate(expression)
        data = [r.data if isinstance(r, ResourceNode) else r for r in results]
        if all(isinstance(d, dict) for d in data):
            return _unique([self._by_identity(d, expression) for d in data])
        # A primitive has no identity. When the expression ends in `.member`, its results are
        # exactly that member of each parent, so find the parents and take the member.
        split = _split_last_member(expression)
        if split is not None:
            head, member = split
            parents = self.evaluate(head)
            parent_data = [p.data if isinstance(p, ResourceNode) else p for p in parents]
            if all(isinstance(p, dict) for p in parent_data):
                hits: list[_Hit] = []
                for parent in _unique([self._by_identity(p, head) for p in parent_data]):
                    hits.extend(_member_hits(parent, member))
                if len(hits) == len(data):
                    return hits
        # Otherwise (`given[1]`, `given.first()`) follow the path fhirpathpy recorded.
        return _unique([self._by_prop_name(r, expression) for r in results])

    def _by_identity(self, data: Any, expression: str) -> _Hit:
        hit = self.origin.get(id(data))
        if hit is None:
            raise Unprocessable(f"{expression!r} selects something that is not part of this resource")
        return hit

    def _by_prop_name(self, result: Any, expression: str) -> _Hit:
        if isinstance(result, ResourceNode) and isinstance(result.data, dict):
            return self._by_identity(result.data, expression)
        prop = result.propName if isinstance(result, ResourceNode) else None
        steps = prop.split(".") if prop else []
        # propName restarts from a type name after functions such as extension(); only a
        # path from the resource root can be followed.
        if len(steps) < 2 or steps[0] != self.resource_type:
            raise Unprocessable(f"cannot tell which element {expression!r} selects")
        current: Any = self.tree
        for step in steps[1:-1]:
            name, index = _split_step(step)
            key = _member_key(current, self.origin[id(current)].node, name)
            current = current.get(key) if key else None
            if index is not None and isinstance(current, list) and index < len(current):
                current = current[index]
            if not isinstance(current, dict):
                raise Unprocessable(f"cannot tell which element {expression!r} selects")
        parent = self.origin[id(current)]
        name, index = _split_step(steps[-1])
        key = _member_key(parent.value, parent.node, name)
        if key is None:
            raise Unprocessable(f"cannot tell which element {expression!r} selects")
        slot = _Slot(parent.value, parent.node, key, index)
        try:
            value = slot.get()
        except (IndexError, TypeError):
            raise Unprocessable(f"cannot tell which element {expression!r} selects") from None
        if value != result.data:
            raise Unprocessable(f"cannot tell which element {expression!r} selects")
        return _Hit(value, None, slot)

    def collection(self, expression: str) -> tuple[dict[str, Any], str | None, str]:
        """The (parent, parent node, key) of the list `expression` names, for insert and move."""
        split = _split_last_member(expression)
        if split is not None:
            head, member = split
            parents = [h for h in self.locate(head) if isinstance(h.value, dict)]
            if len(parents) != 1:
                raise Unprocessable(f"{head!r} must select exactly one element, it selects {len(parents)}")
            parent = parents[0]
            key = _member_key(parent.value, parent.node, member) or member.strip("`")
            return parent.value, parent.node, key
        # A filtered path (`identifier.where(...)`): its items must all come from one list.
        hits = self.locate(expression)
        places = {(id(h.slot.parent), h.slot.key) for h in hits if h.slot and h.slot.index is not None}
        if len(places) != 1 or len(hits) != sum(1 for h in hits if h.slot and h.slot.index is not None):
            raise Unprocessable(f"{expression!r} does not name a single list")
        slot = hits[0].slot
        assert slot is not None
        return slot.parent, slot.parent_node, slot.key


def _unique(hits: list[_Hit]) -> list[_Hit]:
    seen: set[Any] = set()
    out = []
    for hit in hits:
        ident = hit.slot.identity() if hit.slot else "root"
        if ident not in seen:
            seen.add(ident)
            out.append(hit)
    return out


def _member_hits(parent: _Hit, member: str) -> list[_Hit]:
    key = _member_key(parent.value, parent.node, member)
    if key is None:
        return []
    value = parent.value[key]
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    hits = []
    for index, item in items:
        slot = _Slot(parent.value, parent.node, key, index)
        hits.append(_Hit(item, _child_node(parent.node, key, item) if isinstance(item, dict) else None, slot))
    return hits


def _member_key(data: dict[str, Any], node: str | None, name: str) -> str | None:
    """The JSON key of FHIRPath member `name`: itself, or `name` + type for a choice element."""
    name = name.strip("`")
    if name in data:
        return name
    for key in data:
        if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
            found = structures().child(node, key) if node else None
            if node is None or (found and found[0].choice and found[0].name == name):
                return key
    return None


def _split_step(step: str) -> tuple[str, int | None]:
    if step.endswith("]") and "[" in step:
        name, _, index = step[:-1].partition("[")
        return name, int(index)
    return step, None


def _split_last_member(expression: str) -> tuple[str, str] | None:
    """Split `a.b.where(x='.').c` into (`a.b.where(x='.')`, `c`); None unless it ends in a member."""
    depth, quote, last_dot = 0, "", -1
    i = 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "." and depth == 0:
            last_dot = i
        i += 1
    if last_dot <= 0:
        return None
    head, member = expression[:last_dot].strip(), expression[last_dot + 1 :].strip()
    if not head or not _IDENTIFIER.fullmatch(member):
        return None
    return head, member


def _child_node(node: str | None, key: str, value: Any) -> str | None:
    """The structure node describing `value`, the content of `key` in an element of `node`."""
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value["resourceType"]  # contained resources, Bundle.entry.resource
    found = structures().child(node, key) if node else None
    if found is None:
        return None
    element, type_code = found
    return element.child_node(type_code)


def _single(hits: list[_Hit], path: str) -> _Hit:
    if not hits:
        raise Unprocessable(f"{path!r} matches no element")
    if len(hits) > 1:
        raise Unprocessable(f"{path!r} matches {len(hits)} elements, it must match one")
    return hits[0]


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    json: Any
    type: str | None  # FHIR type code of a value[x] or resource; None for an anonymous (parts) value
    shadow: Any = None  # the `_valueX` primitive extension that came with it


def _part_value(part: dict, element: Element | None, node: str | None) -> _Value:
    """Turn a checked `value` part into JSON for `element` (https://hl7.org/fhir/R4/fhirpatch.html)."""
    value_keys = [k for k in part if k.startswith("value")]
    if value_keys:
        key = value_keys[0]
        type_code = _type_of_suffix(key[len("value") :])
        _check_type(type_code, element)
        return _Value(copy.deepcopy(part[key]), type_code, copy.deepcopy(part.get("_" + key)))
    if "resource" in part:
        resource = part["resource"]
        _check_type(resource["resourceType"], element)
        return _Value(copy.deepcopy(resource), resource["resourceType"])
    # Anonymous content (a backbone element such as Patient.contact) comes as parts named
    # after its children.
    if element is not None and element.choice:
        raise Unprocessable(f"a value for the choice element {element.path} needs a value[x]")
    built: dict[str, Any] = {}
    for sub in part["part"]:
        sub_element, key, value = _entry(node, sub["name"], sub)
        _put(built, node, sub_element, key, value)
    return _Value(built, None)


def _entry(node: str | None, name: str, part: dict) -> tuple[Element | None, str, _Value]:
    """Resolve child `name` of `node` and the JSON key its value goes under."""
    element: Element | None = None
    if node is not None:
        element = structures().children(node).get(name)
        if element is None:
            # A client may already have spelled the choice out ("valueQuantity").
            found = structures().child(node, name)
            if found is None:
                raise Unprocessable(f"{node} has no element {name!r}")
            element = found[0]
    child = _element_node(element)
    value = _part_value(part, element, child)
    key = name
    if element is not None and element.choice:
        if value.type is None:
            raise Unprocessable(f"{element.path} needs a typed value")
        key = element.name + value.type[0].upper() + value.type[1:]
        if name not in (element.name, key):
            raise Unprocessable(f"a {value.type} cannot go in {name!r}")
    return element, key, value


def _element_node(element: Element | None) -> str | None:
    """Node for building an element's content from parts: its backbone path or its one type."""
    if element is None or element.choice or not element.types:
        return None
    return element.child_node(element.types[0])


def _put(target: dict[str, Any], node: str | None, element: Element | None, key: str, value: _Value) -> None:
    """Set (single) or append (repeating) `value` under `key`, primitive extension included."""
    repeating = element.is_array if element is not None else isinstance(target.get(key), list)
    if repeating:
        items = target.setdefault(key, [])
        if not isinstance(items, list):
            raise Unprocessable(f"{key!r} is not a list")
        items.append(value.json)
        _align_shadow(target, key, len(items) - 1, value.shadow)
        return
    if element is not None and element.choice and _member_key(target, node, element.name):
        raise Unprocessable(f"{element.name}[x] already has a value; use replace")
    if key in target:
        raise Unprocessable(f"{key!r} already has a value; use replace")
    target[key] = value.json
    if value.shadow is not None:
        target["_" + key] = value.shadow


def _align_shadow(target: dict[str, Any], key: str, index: int, shadow: Any) -> None:
    """Keep `_key` (primitive extensions) in step with list `key`, which just gained item `index`."""
    if shadow is None and not isinstance(target.get("_" + key), list):
        return
    twins = _twins(target, key, missing=1)
    twins.insert(index, shadow)


def _twins(parent: dict[str, Any], key: str, *, missing: int = 0) -> list[Any]:
    """The `_key` list parallel to list `key` (https://hl7.org/fhir/R4/json.html#primitive),
    created and padded with nulls on demand; `missing` items of `key` have no twin slot yet."""
    twins = parent.get("_" + key)
    if not isinstance(twins, list):
        twins = parent["_" + key] = []
    twins.extend([None] * (len(parent[key]) - missing - len(twins)))
    return twins


def _type_of_suffix(suffix: str) -> str:
    """`String` -> `string`, `HumanName` -> `HumanName`: value[x] suffix to type code."""
    types = structures().types
    primitive = suffix[:1].lower() + suffix[1:]
    if primitive in types and types[primitive].kind == "primitive-type":
        return primitive
    if suffix in types:
        return suffix
    raise BadRequest(f"value{suffix} is not a FHIR data type")


def _json_kind(type_code: str) -> str:
    if type_code in JSON_BOOLEAN:
        return "boolean"
    if type_code in JSON_INTEGER or type_code in JSON_DECIMAL:
        return "number"
    return "string"


def _check_json_shape(type_code: str, json: Any) -> None:
    if not structures().is_primitive(type_code):
        ok = isinstance(json, dict)
    elif _json_kind(type_code) == "boolean":
        ok = isinstance(json, bool)
    elif _json_kind(type_code) == "number":
        ok = isinstance(json, int | float) and not isinstance(json, bool)
    else:
        ok = isinstance(json, str)
    if not ok:
        raise BadRequest(f"a value{type_code[0].upper()}{type_code[1:]} has the wrong JSON shape")


def _check_type(given: str, element: Element | None) -> None:
    """The spec requires an error for a value of the wrong type for where it goes."""
    if element is None or not element.types:
        return
    if element.choice:
        if given not in element.types:
            raise Unprocessable(f"{element.path} cannot hold a {given}")
        return
    expected = element.types[0]
    S = structures()
    if (
        given == expected
        or (expected in _RESOURCE_TYPES and given in S.resource_types)
        or (given in _QUANTITIES and expected in _QUANTITIES)
        # valueString for a `code` element is common and harmless: same JSON.
        or (S.is_primitive(given) and S.is_primitive(expected) and _json_kind(given) == _json_kind(expected))
    ):
        if expected in JSON_INTEGER and given in JSON_DECIMAL:
            raise Unprocessable(f"{element.path} is an {expected}, not a {given}")
        return
    raise Unprocessable(f"{element.path} is a {expected}, not a {given}")


# -- operations -------------------------------------------------------------------------


def _add(working: dict[str, Any], op: _Operation) -> None:
    target = _single(_View(working).locate(op.path), op.path)
    assert op.name is not None and op.value is not None
    if isinstance(target.value, dict):
        container, node = target.value, target.node
    else:
        # A primitive takes only `id` and `extension`, which live in its `_name` twin.
        container, node = _primitive_twin(target), "Element"
    element, key, value = _entry(node, op.name, op.value)
    _put(container, node, element, key, value)


def _primitive_twin(target: _Hit) -> dict[str, Any]:
    slot = target.slot
    assert slot is not None
    if slot.index is None:
        twin = slot.parent.get("_" + slot.key)
        if not isinstance(twin, dict):
            twin = slot.parent["_" + slot.key] = {}
        return twin
    twins = _twins(slot.parent, slot.key)
    if not isinstance(twins[slot.index], dict):
        twins[slot.index] = {}
    return twins[slot.index]


def _insert(working: dict[str, Any], op: _Operation) -> None:
    parent, node, key = _View(working).collection(op.path)
    element = _Slot(parent, node, key, None).element()
    if node is not None and element is None:
        raise Unprocessable(f"{node} has no element {key!r}")
    if element is not None and not element.is_array:
        raise Unprocessable(f"{key!r} is not a repeating element")
    items = parent.get(key, [])
    if not isinstance(items, list):
        raise Unprocessable(f"{key!r} is not a list")
    assert op.index is not None and op.value is not None
    if op.index > len(items):
        raise Unprocessable(f"index {op.index} is past the end of {key!r} (length {len(items)})")
    value = _part_value(op.value, element, _element_node(element))
    parent[key] = items
    items.insert(op.index, value.json)
    _align_shadow(parent, key, op.index, value.shadow)


def _delete(working: dict[str, Any], op: _Operation) -> None:
    hits = _View(working).locate(op.path)
    if not hits:
        return  # "Path of the element to delete (if found)": nothing to do
    slot = _single(hits, op.path).slot
    if slot is None:
        raise Unprocessable("cannot delete the resource itself")
    twin_key = "_" + slot.key
    if slot.index is None:
        del slot.parent[slot.key]
        slot.parent.pop(twin_key, None)  # the element's extensions go with it
        return
    slot.parent[slot.key].pop(slot.index)
    twins = slot.parent.get(twin_key)
    if isinstance(twins, list) and slot.index < len(twins):
        twins.pop(slot.index)


def _replace(working: dict[str, Any], op: _Operation) -> None:
    slot = _single(_View(working).locate(op.path), op.path).slot
    if slot is None:
        raise Unprocessable("cannot replace the resource itself")
    assert op.value is not None
    element = slot.element()
    value = _part_value(op.value, element, _element_node(element))
    key = slot.key
    if element is not None and element.choice:
        if value.type is None:
            raise Unprocessable(f"{element.path} needs a typed value")
        # A choice element changes its JSON name with its type (valueQuantity -> valueString).
        key = element.name + value.type[0].upper() + value.type[1:]
        if key != slot.key:
            del slot.parent[slot.key]
            slot.parent.pop("_" + slot.key, None)
    if slot.index is None:
        slot.parent[key] = value.json
        slot.parent.pop("_" + key, None)
        if value.shadow is not None:
            slot.parent["_" + key] = value.shadow
        return
    slot.parent[key][slot.index] = value.json
    if value.shadow is not None or isinstance(slot.parent.get("_" + key), list):
        _twins(slot.parent, key)[slot.index] = value.shadow


def _move(working: dict[str, Any], op: _Operation) -> None:
    parent, _, key = _View(working).collection(op.path)
    items = parent.get(key)
    assert op.source is not None and op.destination is not None
    if not isinstance(items, list):
        raise Unprocessable(f"{op.path!r} is not a list")
    for name, index in (("source", op.source), ("destination", op.destination)):
        if index >= len(items):
            raise Unprocessable(f"{name} index {index} is out of range (length {len(items)})")
    items.insert(op.destination, items.pop(op.source))
    if isinstance(parent.get("_" + key), list):
        twins = _twins(parent, key)
        twins.insert(op.destination, twins.pop(op.source))


_APPLY = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}


def _prune(data: Any) -> bool:
    """Drop the empty objects, empty lists and all-null `_x` lists that deletes leave behind.

    FHIR JSON has no empty objects or arrays (https://hl7.org/fhir/R4/json.html), so deleting
    `name[0].family` when it was all `name[0]` held removes that name. Returns emptiness.
    """
    if isinstance(data, dict):
        for key in list(data):
            value = data[key]
            if key.startswith("_") and isinstance(value, list):
                # Twin lists keep their positions: an emptied twin becomes null, not a gap.
                cleaned = [None if v is None or (isinstance(v, dict) and _prune(v)) else v for v in value]
                if all(v is None for v in cleaned):
                    del data[key]
                else:
                    data[key] = cleaned
            elif isinstance(value, dict | list) and _prune(value):
                del data[key]
        return not data
    if isinstance(data, list):
        # Only primitives have twins, so dropping an emptied complex item shifts nothing.
        data[:] = [v for v in data if not (isinstance(v, dict | list) and _prune(v))]
        return not data
    return False
