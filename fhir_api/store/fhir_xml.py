"""FHIR XML <-> the JSON form (a dict), driven by the StructureDefinitions.

https://hl7.org/fhir/R4/xml.html and https://hl7.org/fhir/R4/json.html: the two formats
carry the same content. XML puts primitive values in a `value` attribute, element ids and
extension urls in attributes, orders elements as the definitions do and wraps resources
in an element named by their type; JSON splits a primitive's id/extensions into a `_name`
companion and knows arrays, booleans and numbers. `structure.py` says which is which.

Parsing uses expat directly (as defusedxml does) so that a DTD, any entity declaration
and external entities are refused before anything is expanded, and so that the narrative
`div` can be kept as the exact text the client sent.
"""
from __future__ import annotations

import html.entities
import re
from collections.abc import Callable
from functools import cache
from typing import Any
from xml.parsers import expat

from fhir_api.store.errors import BadRequest
from fhir_api.store.jsonio import Decimal
from fhir_api.store.structure import JSON_BOOLEAN, JSON_DECIMAL, JSON_INTEGER, resource_types, structures

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

# What kind of content an element holds, for one of its types.
PRIMITIVE, COMPLEX, RESOURCE, XHTML = range(4)


# -- what the definitions say, cached per node --------------------------------------------


class _Child:
    """One XML/JSON element name of a node: `valueQuantity`, `given`, `contained`."""

    __slots__ = ("name", "base", "order", "array", "kind", "type", "node", "convert")

    def __init__(
        self, name: str, base: str, order: int, array: bool, kind: int, type_: str, node: str
    ) -> None:
        self.name = name
        self.base = base  # the element's name without the choice suffix: one per object
        self.order = order
        self.array = array
        self.kind = kind
        self.type = type_
        self.node = node  # where COMPLEX children are defined
        self.convert = _converter(type_) if kind == PRIMITIVE else None


class _Node:
    """The children of a type or backbone path, as they appear in XML elements."""

    __slots__ = ("name", "table", "skip", "is_resource", "is_extension")

    def __init__(self, name: str) -> None:
        s = structures()
        t = s.types.get(name)
        self.name = name
        self.is_resource = t is not None and t.kind == "resource"
        self.is_extension = name == "Extension"
        self.table: dict[str, _Child] = {}
        # JSON properties that are no XML element here: written as attributes or dropped.
        skip = {"fhir_comments"}
        if self.is_resource:
            skip.add("resourceType")
        else:
            skip.add("id")  # Element.id is an attribute; Resource.id an element
        if self.is_extension:
            skip.add("url")
        self.skip = frozenset(skip)
        for el in s.children(name).values():
            if el.name in skip or not el.types:
                continue
            for type_ in el.types:
                if type_ == "xhtml":
                    kind = XHTML
                elif type_ == "Resource":
                    kind = RESOURCE
                elif s.is_primitive(type_):
                    kind = PRIMITIVE
                else:
                    kind = COMPLEX
                xml_name = el.name + type_[0].upper() + type_[1:] if el.choice else el.name
                self.table[xml_name] = _Child(
                    xml_name, el.name, el.order, el.is_array, kind, type_, el.child_node(type_)
                )


_NODES: dict[str, _Node] = {}


def _node(name: str) -> _Node:
    node = _NODES.get(name)
    if node is None:
        node = _NODES[name] = _Node(name)
    return node


def _resource_node(resource_type: Any) -> _Node:
    if not isinstance(resource_type, str) or resource_type not in resource_types():
        raise BadRequest(f"Unknown resource type '{resource_type}'", code="structure")
    return _node(resource_type)


# -- primitive values ------------------------------------------------------------------------

# https://hl7.org/fhir/R4/datatypes.html#primitive -- these are also valid JSON numbers.
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


def _to_boolean(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise BadRequest(f"'{text}' is not a boolean", code="value")


def _to_integer(text: str) -> int:
    if not _INTEGER.match(text):
        raise BadRequest(f"'{text}' is not an integer", code="value")
    return int(text)


def _to_decimal(text: str) -> Decimal:
    if not _DECIMAL.match(text):
        raise BadRequest(f"'{text}' is not a decimal", code="value")
    return Decimal(text)  # keeps the literal: "1.50" stays "1.50"


def _to_string(text: str) -> str:
    return text


@cache
def _converter(type_: str) -> Callable[[str], Any]:
    if type_ in JSON_BOOLEAN:
        return _to_boolean
    if type_ in JSON_INTEGER:
        return _to_integer
    if type_ in JSON_DECIMAL:
        return _to_decimal
    return _to_string


def _text(value: Any) -> str:
    """The XML text of a JSON primitive value."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        return value.literal
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return repr(value)
    raise BadRequest(f"{value!r} is not a primitive value", code="structure")


# Characters XML 1.0 cannot carry at all, even as character references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ATTR_SPECIAL = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]')
_TEXT_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def printable(value: Any) -> Any:
    """The value with every character XML cannot carry replaced by U+FFFD: for messages that
    quote what a client sent (an OperationOutcome's diagnostics), which must stay writable."""
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value


def _check_chars(text: str) -> None:
    bad = _NOT_XML.search(text)
    if bad:
        raise BadRequest(f"Character U+{ord(bad.group()):04X} cannot be written in XML", code="structure")


def _escape_attr(text: str) -> str:
    if not _ATTR_SPECIAL.search(text):
        return text
    _check_chars(text)
    # Tabs and line breaks as references: a parser would otherwise normalise them to spaces.
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    )


def _escape_text(text: str) -> str:
    if not _TEXT_SPECIAL.search(text):
        return text
    _check_chars(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


# -- JSON -> XML ---------------------------------------------------------------------------


def dumps(resource: dict, pretty: bool = False) -> bytes:
    """The XML document for a resource in its JSON form (https://hl7.org/fhir/R4/xml.html)."""
    if not isinstance(resource, dict):
        raise BadRequest("A resource must be a JSON object", code="structure")
    writer = _Writer(pretty)
    writer.resource(resource, 0)
    if pretty:
        writer.parts.append("\n")
    try:
        return "".join(writer.parts).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON \ud800 escape
        raise BadRequest(f"The resource holds text that is not Unicode: {exc}", code="structure") from None


class _Writer:
    """Appends the XML text of a resource to `parts`, elements in definition order."""

    __slots__ = ("parts", "pretty")

    def __init__(self, pretty: bool) -> None:
        self.parts: list[str] = [_DECLARATION]
        self.pretty = pretty

    def _indent(self, depth: int) -> str:
        return "\n" + "  " * depth if self.pretty else ""

    def resource(self, resource: dict, depth: int) -> None:
        rtype = resource.get("resourceType")
        node = _resource_node(rtype)
        xmlns = f' xmlns="{FHIR_NS}"' if depth == 0 else ""
        if depth == 0 and self.pretty:
            self.parts.append("\n")
        else:
            self.parts.append(self._indent(depth))
        self.parts.append(f"<{rtype}{xmlns}")
        self._body(rtype, resource, node, depth)

    def _body(self, tag: str, obj: dict, node: _Node, depth: int) -> None:
        """The rest of an element whose start tag is open: `>` children `</tag>`, or `/>`."""
        parts = self.parts
        open_at = len(parts)
        parts.append(">")
        self._content(obj, node, depth + 1)
        if len(parts) == open_at + 1:
            parts[open_at] = "/>"
        else:
            parts.append(f"{self._indent(depth)}</{tag}>")

    def _content(self, obj: dict, node: _Node, depth: int) -> None:
        table = node.table
        entries: dict[str, list[Any]] = {}
        for key, value in obj.items():
            companion = key[:1] == "_"
            name = key[1:] if companion else key
            child = table.get(name)
            if child is None:
                if key in node.skip:
                    continue
                raise BadRequest(f"Unknown element '{key}' in {node.name}", code="structure")
            entry = entries.get(name)
            if entry is None:
                entry = entries[name] = [child, None, None]
            if not companion:
                entry[1] = value
            elif child.kind == PRIMITIVE:
                entry[2] = value
            else:
                raise BadRequest(f"'{key}' in {node.name} is not a primitive's companion", code="structure")
        for child, value, extra in sorted(entries.values(), key=_by_order):
            if child.array:
                values = _as_list(value, child, node)
                if child.kind == PRIMITIVE:
                    extras = _as_list(extra, child, node)
                    for i in range(max(len(values), len(extras))):
                        self._primitive(
                            child,
                            values[i] if i < len(values) else None,
                            extras[i] if i < len(extras) else None,
                            depth,
                        )
                else:
                    for item in values:
                        self._element(child, item, depth)
            elif isinstance(value, list) or isinstance(extra, list):
                raise BadRequest(f"'{child.name}' in {node.name} is not an array", code="structure")
            elif child.kind == PRIMITIVE:
                self._primitive(child, value, extra, depth)
            elif value is not None:
                self._element(child, value, depth)

    def _element(self, child: _Child, value: Any, depth: int) -> None:
        parts = self.parts
        if child.kind == COMPLEX:
            if not isinstance(value, dict):
                raise BadRequest(f"'{child.name}' must be a JSON object", code="structure")
            node = _node(child.node)
            attrs = ""
            if "id" in value:
                attrs = f' id="{_escape_attr(_text(value["id"]))}"'
            if node.is_extension and "url" in value:
                attrs += f' url="{_escape_attr(_text(value["url"]))}"'
            parts.append(f"{self._indent(depth)}<{child.name}{attrs}")
            self._body(child.name, value, node, depth)
        elif child.kind == RESOURCE:
            if not isinstance(value, dict):
                raise BadRequest(f"'{child.name}' must be a resource", code="structure")
            parts.append(f"{self._indent(depth)}<{child.name}>")
            self.resource(value, depth + 1)
            parts.append(f"{self._indent(depth)}</{child.name}>")
        else:  # XHTML
            if not isinstance(value, str):
                raise BadRequest(f"'{child.name}' must be a string of XHTML", code="structure")
            parts.append(self._indent(depth))
            parts.append(_xhtml_for_xml(value))

    def _primitive(self, child: _Child, value: Any, extra: Any, depth: int) -> None:
        attrs = ""
        extensions = None
        if extra is not None:
            if not isinstance(extra, dict):
                raise BadRequest(f"'_{child.name}' must be a JSON object", code="structure")
            for key, item in extra.items():
                if key == "id":
                    attrs = f' id="{_escape_attr(_text(item))}"'
                elif key == "extension":
                    extensions = item
                elif key != "fhir_comments":
                    raise BadRequest(f"Unknown element '{key}' in '_{child.name}'", code="structure")
        if value is not None:
            attrs += f' value="{_escape_attr(_text(value))}"'
        elif not attrs and not extensions:
            return  # a null placeholder with nothing to say
        indent = self._indent(depth)
        if not extensions:
            self.parts.append(f"{indent}<{child.name}{attrs}/>")
            return
        if not isinstance(extensions, list):
            raise BadRequest(f"'_{child.name}.extension' must be an array", code="structure")
        self.parts.append(f"{indent}<{child.name}{attrs}>")
        extension = _node("string").table["extension"]
        for item in extensions:
            self._element(extension, item, depth + 1)
        self.parts.append(f"{indent}</{child.name}>")


def _by_order(entry: list[Any]) -> int:
    return entry[0].order


def _as_list(value: Any, child: _Child, node: _Node) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"'{child.name}' in {node.name} must be an array", code="structure")
    return value


def _xhtml_for_xml(div: str) -> str:
    """The narrative as XML text: the client's own text when it is a proper XHTML div.

    https://hl7.org/fhir/R4/narrative.html#xhtml -- a `div` in the XHTML namespace. The
    write path does not parse narratives, so stored ones may be sloppy; a read must still
    give well-formed XML: a missing namespace declaration is added, HTML named entities
    become character references, and anything else unparseable is shown as escaped text.
    """
    try:
        return _parse_div(div)
    except (BadRequest, expat.ExpatError):
        pass
    if "&" in div:
        try:
            return _parse_div(_NAMED_ENTITY.sub(_numeric_reference, div))
        except (BadRequest, expat.ExpatError):
            pass
    return f'<div xmlns="{XHTML_NS}">{_escape_text(div)}</div>'


_NAMED_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_PREDEFINED = frozenset({"amp", "lt", "gt", "quot", "apos"})


def _numeric_reference(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _PREDEFINED or name not in html.entities.name2codepoint:
        return match.group()
    return f"&#{html.entities.name2codepoint[name]};"


def _parse_div(div: str) -> str:
    raw = div.encode("utf-8", "surrogatepass")
    parser = _new_parser()
    collector: list[_Xhtml] = []
    pending: list[tuple[str | None, str]] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if not collector:
            uri, local, _ = _split(name)
            if local != "div" or uri not in (XHTML_NS, None):
                raise BadRequest("The narrative must be an XHTML <div>", code="structure")
            collector.append(_Xhtml(parser, raw, parser.CurrentByteIndex, pending, adopt_null_ns=True))
        collector[0].start(name, attrs, pending)
        pending.clear()

    parser.StartNamespaceDeclHandler = lambda prefix, uri: pending.append((prefix, uri))
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: collector[0].end(name)
    parser.CharacterDataHandler = lambda data: collector and collector[0].text(data)
    parser.Parse(raw, True)
    xhtml = collector[0]
    if xhtml.start_at == 0 and xhtml.end_at == len(raw) and xhtml.verbatim:
        return div
    return xhtml.canonical()


# -- XML -> JSON ---------------------------------------------------------------------------


def loads(data: bytes) -> dict:
    """The JSON form of a FHIR XML document; anything but plain FHIR XML is a 400."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _Reader(data).parse()


def _forbidden(*_args: Any) -> None:
    raise BadRequest("XML with a DTD or entity declarations is not accepted", code="structure")


def _new_parser() -> Any:
    """An expat parser that refuses DTDs and entities (XXE, billion laughs) outright."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.namespace_prefixes = True  # names arrive as "uri local prefix"
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbidden
    parser.EntityDeclHandler = _forbidden
    parser.UnparsedEntityDeclHandler = _forbidden
    parser.ExternalEntityRefHandler = _forbidden
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser


def _split(name: str) -> tuple[str | None, str, str | None]:
    parts = name.split(" ")
    if len(parts) == 1:
        return None, parts[0], None
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def _where(name: str) -> str:
    uri, local, _ = _split(name)
    return f"{{{uri}}}{local}" if uri else local


class _Reader:
    """Builds the JSON form while expat walks the document: one frame per open element."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parser = _new_parser()
        self.stack: list[Any] = []
        self.result: dict | None = None
        self.xhtml: _Xhtml | None = None  # while inside a narrative div
        self.xhtml_depth = 0
        self.pending_ns: list[tuple[str | None, str]] = []
        self.utf8 = not data.startswith((b"\xfe\xff", b"\xff\xfe"))

    def parse(self) -> dict:
        p = self.parser
        p.XmlDeclHandler = self._declaration
        p.StartNamespaceDeclHandler = self._namespace
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        try:
            p.Parse(self.data, True)
        except expat.ExpatError as exc:
            raise BadRequest(f"The body is not well-formed XML: {exc}", code="structure") from None
        assert self.result is not None  # expat insists on a root element
        return self.result

    def _declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
            self.utf8 = False  # byte offsets then no longer slice UTF-8 text

    def _namespace(self, prefix: str | None, uri: str) -> None:
        self.pending_ns.append((prefix, uri))

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if self.xhtml is not None:
            self.xhtml_depth += 1
            self.xhtml.start(name, attrs, self.pending_ns)
            self.pending_ns.clear()
            return
        uri, local, _ = _split(name)
        stack = self.stack
        if not stack:
            if uri != FHIR_NS:
                raise BadRequest(f"The root element must be in the namespace {FHIR_NS}", code="structure")
            stack.append(_ObjectFrame(None, _resource_node(local), attrs))
        else:
            child = stack[-1].child(local)
            if uri != (XHTML_NS if child.kind == XHTML else FHIR_NS):
                raise BadRequest(f"Element {_where(name)} is in the wrong namespace", code="structure")
            if child.kind == COMPLEX:
                stack.append(_ObjectFrame(child, _node(child.node), attrs))
            elif child.kind == PRIMITIVE:
                stack.append(_PrimitiveFrame(child, attrs))
            elif child.kind == RESOURCE:
                _no_attributes(child.name, attrs)
                stack.append(_ResourceFrame(child))
            else:
                self.xhtml = _Xhtml(self.parser, self.data, self.parser.CurrentByteIndex, self.pending_ns)
                self.xhtml.verbatim &= self.utf8
                self.xhtml_depth = 1
                self.xhtml.start(name, attrs, self.pending_ns)
                stack.append(child)
        self.pending_ns.clear()

    def _end(self, name: str) -> None:
        if self.xhtml is not None:
            self.xhtml.end(name)
            self.xhtml_depth -= 1
            if self.xhtml_depth:
                return
            child = self.stack.pop()
            self.stack[-1].add(child, self.xhtml.result(), None)
            self.xhtml = None
            return
        frame = self.stack.pop()
        value, extra = frame.finish()
        if self.stack:
            self.stack[-1].add(frame.element, value, extra)
        else:
            self.result = value

    def _text(self, data: str) -> None:
        if self.xhtml is not None:
            self.xhtml.text(data)
        elif data.strip():
            frame = self.stack[-1] if self.stack else None
            where = frame.node.name if isinstance(frame, _ObjectFrame) else getattr(frame, "element", None)
            where = where.name if isinstance(where, _Child) else where
            raise BadRequest(f"Text is not allowed in FHIR element {where}", code="structure")


def _no_attributes(where: str, attrs: dict[str, str]) -> None:
    for key in attrs:
        if " " not in key:  # attributes of other namespaces (xsi:schemaLocation) are ignored
            raise BadRequest(f"Unknown attribute '{key}' on {where}", code="structure")


class _ObjectFrame:
    """A resource, datatype or backbone element: a JSON object."""

    __slots__ = ("element", "node", "out", "seen", "primitive_arrays")

    def __init__(self, element: _Child | None, node: _Node, attrs: dict[str, str]) -> None:
        self.element = element
        self.node = node
        self.out: dict[str, Any] = {"resourceType": node.name} if node.is_resource else {}
        self.seen: set[str] = set()
        self.primitive_arrays: dict[str, tuple[list[Any], list[Any]]] | None = None
        for key, value in attrs.items():
            if key == "id" and not node.is_resource:
                self.out["id"] = value
            elif key == "url" and node.is_extension:
                self.out["url"] = value
            elif " " not in key:
                raise BadRequest(f"Unknown attribute '{key}' on {node.name}", code="structure")

    def child(self, local: str) -> _Child:
        child = self.node.table.get(local)
        if child is None:
            raise BadRequest(f"Unknown element '{local}' in {self.node.name}", code="structure")
        return child

    def add(self, child: _Child, value: Any, extra: Any) -> None:
        name = child.name
        if child.array:
            if child.kind == PRIMITIVE:
                if self.primitive_arrays is None:
                    self.primitive_arrays = {}
                pair = self.primitive_arrays.get(name)
                if pair is None:
                    pair = self.primitive_arrays[name] = ([], [])
                pair[0].append(value)
                pair[1].append(extra)
            else:
                items = self.out.get(name)
                if items is None:
                    items = self.out[name] = []
                items.append(value)
            return
        if child.base in self.seen:
            raise BadRequest(f"Element '{child.base}' repeats in {self.node.name}", code="structure")
        self.seen.add(child.base)
        if value is not None:
            self.out[name] = value
        if extra is not None:
            self.out["_" + name] = extra

    def finish(self) -> tuple[dict, None]:
        if self.primitive_arrays:
            # JSON keeps values and their id/extensions in parallel arrays, null where absent.
            for name, (values, extras) in self.primitive_arrays.items():
                if any(v is not None for v in values):
                    self.out[name] = values
                if any(e is not None for e in extras):
                    self.out["_" + name] = extras
        return self.out, None


class _PrimitiveFrame:
    """A primitive: its value becomes the JSON value, its id and extensions go to `_name`."""

    __slots__ = ("element", "value", "extra")

    def __init__(self, element: _Child, attrs: dict[str, str]) -> None:
        self.element = element
        self.value: Any = None
        self.extra: dict[str, Any] | None = None
        for key, text in attrs.items():
            if key == "value":
                self.value = element.convert(text)  # type: ignore[misc]
            elif key == "id":
                self.extra = {"id": text}
            elif " " not in key:
                raise BadRequest(f"Unknown attribute '{key}' on {element.name}", code="structure")

    def child(self, local: str) -> _Child:
        if local != "extension":
            raise BadRequest(f"Unknown element '{local}' in {self.element.name}", code="structure")
        return _node("string").table["extension"]

    def add(self, child: _Child, value: Any, extra: Any) -> None:
        if self.extra is None:
            self.extra = {}
        self.extra.setdefault("extension", []).append(value)

    def finish(self) -> tuple[Any, dict | None]:
        return self.value, self.extra


class _ResourceFrame:
    """`contained`, `Bundle.entry.resource`...: an element holding one resource element."""

    __slots__ = ("element", "resource")

    def __init__(self, element: _Child) -> None:
        self.element = element
        self.resource: dict | None = None

    def child(self, local: str) -> _Child:
        if self.resource is not None:
            raise BadRequest(f"'{self.element.name}' holds more than one resource", code="structure")
        node = _resource_node(local)
        return _Child(local, local, 0, False, COMPLEX, local, node.name)

    def add(self, child: _Child, value: Any, extra: Any) -> None:
        self.resource = value

    def finish(self) -> tuple[dict, None]:
        if self.resource is None:
            raise BadRequest(f"'{self.element.name}' holds no resource", code="structure")
        return self.resource, None


# -- the narrative -------------------------------------------------------------------------

_VOID = frozenset({"area", "base", "br", "col", "hr", "img", "input", "link", "meta", "wbr"})


class _Xhtml:
    """One narrative div being parsed: kept verbatim when that text stands on its own.

    The bytes of the div are reused when the div declares the XHTML namespace itself and
    uses no prefix declared outside it; otherwise (a prefixed `h:div`, a namespace
    declared on an ancestor, a non-UTF-8 document) it is written out again in the form
    https://hl7.org/fhir/R4/json.html#xhtml asks for: `<div xmlns="...xhtml">` unprefixed.
    """

    def __init__(
        self,
        parser: Any,
        data: bytes,
        start_at: int,
        root_ns: list[tuple[str | None, str]],
        adopt_null_ns: bool = False,
    ) -> None:
        self.parser = parser
        self.data = data
        self.start_at = start_at
        self.end_at = -1
        self.adopt_null_ns = adopt_null_ns
        self.verbatim = (None, XHTML_NS) in root_ns
        self.scopes: list[set[str]] = []  # prefixes declared inside the div, per open element
        self.defaults: list[str | None] = []  # the default namespace of the rewritten text
        self.parts: list[str] = []
        self.open_at = -1  # the position of the ">" of the last start tag, while it has no content
        self.has_content = False

    def start(self, name: str, attrs: dict[str, str], declared: list[tuple[str | None, str]]) -> None:
        if self.defaults:
            self.has_content = True
        uri, local, prefix = _split(name)
        scope = {p for p, _ in declared if p}
        self.scopes.append(scope)
        if prefix and not self._declared(prefix):
            self.verbatim = False
        if uri is None and self.adopt_null_ns:
            uri = XHTML_NS
        if not self.defaults and (uri != XHTML_NS or prefix):
            self.verbatim = False  # JSON wants exactly <div xmlns="http://www.w3.org/1999/xhtml">
        out = [f"<{local}"]
        if uri != (self.defaults[-1] if self.defaults else None):
            out.append(f' xmlns="{_escape_attr(uri or "")}"')
        self.defaults.append(uri)
        for key, value in attrs.items():
            a_uri, a_local, a_prefix = _split(key)
            if a_uri is None:
                out.append(f' {a_local}="{_escape_attr(value)}"')
                continue
            if a_uri == XML_NS:
                out.append(f' xml:{a_local}="{_escape_attr(value)}"')
                continue
            if a_prefix and not self._declared(a_prefix):
                self.verbatim = False
            a_prefix = a_prefix or "ns"
            out.append(f' xmlns:{a_prefix}="{_escape_attr(a_uri)}"')
            out.append(f' {a_prefix}:{a_local}="{_escape_attr(value)}"')
        self.parts.append("".join(out))
        self.parts.append(">")
        self.open_at = len(self.parts) - 1

    def _declared(self, prefix: str) -> bool:
        return prefix == "xml" or any(prefix in scope for scope in self.scopes)

    def end(self, name: str) -> None:
        _, local, _ = _split(name)
        if self.open_at == len(self.parts) - 1 and local in _VOID:
            self.parts[-1] = "/>"
        else:
            self.parts.append(f"</{local}>")
        self.open_at = -1
        self.scopes.pop()
        self.defaults.pop()
        if not self.defaults:
            self.end_at = self._end_offset()

    def text(self, data: str) -> None:
        self.open_at = -1
        self.has_content = True
        self.parts.append(_escape_text(data))

    def _end_offset(self) -> int:
        """Where the div's text ends in the input (expat reports where its end tag starts)."""
        at = self.parser.CurrentByteIndex
        if not self.has_content and self.data[self.start_at : at].endswith(b"/>"):
            return at  # <div .../>: expat reports the position after it
        return self.data.index(b">", at) + 1

    def canonical(self) -> str:
        return "".join(self.parts)

    def result(self) -> str:
        if self.verbatim:
            try:
                return self.data[self.start_at : self.end_at].decode("utf-8")
            except UnicodeDecodeError:
                pass
        return self.canonical()
