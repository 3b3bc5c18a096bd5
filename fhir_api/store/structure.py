"""The shape of every R4 type, read once from the StructureDefinitions the project ships.

https://hl7.org/fhir/R4/structuredefinition.html -- the validator, the XML converter,
`_summary`/`_elements` and the search indexer all ask this module what an element is
(its type, cardinality, summary flag, position) instead of hard-coding resource shapes.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

DEFINITIONS = Path(__file__).resolve().parent / "definitions"

# JSON representation of primitive types (https://hl7.org/fhir/R4/json.html#primitive):
# these are JSON booleans / numbers, every other primitive is a JSON string.
JSON_BOOLEAN = frozenset({"boolean"})
JSON_INTEGER = frozenset({"integer", "positiveInt", "unsignedInt"})
JSON_DECIMAL = frozenset({"decimal"})

# System types used by the snapshot for `id` and primitive `.value` (FHIRPath types).
_SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a type or backbone element, as the JSON format names it."""

    path: str  # "Observation.value[x]", "Patient.contact.name"
    name: str  # the JSON name without "[x]": "value", "name"
    types: tuple[str, ...]  # type codes; "BackboneElement"/"Element" for inline children
    min: int
    max: str  # "1", "*", "0" or a number
    summary: bool
    modifier: bool
    node: str | None  # where the children of an inline (backbone) element are defined
    order: int  # position in the snapshot: XML element order
    binding: tuple[str, str] | None  # (strength, valueSet) for coded elements
    # Resource types a Reference may point at (type.targetProfile); None: any resource.
    targets: frozenset[str] | None = None

    @property
    def choice(self) -> bool:
        return self.path.endswith("[x]")

    @property
    def is_array(self) -> bool:
        return self.max != "1" and self.max != "0"

    def child_node(self, type_code: str) -> str:
        """The node whose children describe this element's content for one of its types."""
        return self.node if self.node is not None else type_code


@dataclass(frozen=True, slots=True)
class TypeDef:
    name: str
    kind: str  # "primitive-type", "complex-type", "resource", "logical"
    abstract: bool
    base: str | None


class Structures:
    """All type definitions, with the children of every node (type or backbone path)."""

    def __init__(self, structure_definitions: list[dict]) -> None:
        self.types: dict[str, TypeDef] = {}
        self._children: dict[str, dict[str, Element]] = {}
        self._by_json_name: dict[str, dict[str, tuple[Element, str]]] = {}
        for sd in structure_definitions:
            if sd.get("derivation") == "constraint" or sd["type"] != sd["id"]:
                continue  # profiles (SimpleQuantity, vitalsigns...) add no new shapes
            base = sd.get("baseDefinition", "").rsplit("/", 1)[-1] or None
            self.types[sd["id"]] = TypeDef(sd["id"], sd["kind"], bool(sd.get("abstract")), base)
            self._load_snapshot(sd)

    def _load_snapshot(self, sd: dict) -> None:
        elements = sd["snapshot"]["element"]
        root = elements[0]["path"]
        self._children.setdefault(root, {})
        for order, el in enumerate(elements[1:], start=1):
            path = el["path"]
            parent, _, last = path.rpartition(".")
            if sd["kind"] == "primitive-type" and path == f"{root}.value":
                continue  # a primitive's value is the JSON value itself, not a child
            types = tuple(_type_code(t) for t in el.get("type", ()))
            node = None
            if "contentReference" in el:
                node = el["contentReference"].lstrip("#")
                types = ("BackboneElement",)
            elif types in (("BackboneElement",), ("Element",)):
                node = path
            binding = el.get("binding")
            element = Element(
                path=path,
                name=last[:-3] if last.endswith("[x]") else last,
                types=types,
                min=int(el.get("min", 0)),
                max=str(el.get("max", "*")),
                summary=bool(el.get("isSummary")),
                modifier=bool(el.get("isModifier")),
                node=node,
                order=order,
                binding=(binding["strength"], binding.get("valueSet", "")) if binding else None,
                targets=_reference_targets(el.get("type", ())),
            )
            self._children.setdefault(parent, {})[element.name] = element
            if node == path:
                self._children.setdefault(path, {})

    # -- queries -------------------------------------------------------------------------

    def children(self, node: str) -> dict[str, Element]:
        """Children of a type ("HumanName") or backbone path ("Patient.contact"), by name."""
        return self._children.get(node, {})

    def child(self, node: str, json_name: str) -> tuple[Element, str] | None:
        """Resolve a JSON property name to (element, type code): "valueQuantity" -> value[x], Quantity."""
        table = self._by_json_name.get(node)
        if table is None:
            table = {}
            for el in self.children(node).values():
                if el.choice:
                    for t in el.types:
                        table[el.name + t[0].upper() + t[1:]] = (el, t)
                else:
                    table[el.name] = (el, el.types[0] if el.types else "")
            self._by_json_name[node] = table
        return table.get(json_name)

    def is_primitive(self, type_code: str) -> bool:
        t = self.types.get(type_code)
        return t is not None and t.kind == "primitive-type"

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset(t.name for t in self.types.values() if t.kind == "resource" and not t.abstract)


def _reference_targets(types: list[dict]) -> frozenset[str] | None:
    """The resource types a core Reference element allows: its targetProfiles are core types."""
    found: set[str] = set()
    for t in types:
        if t.get("code") != "Reference":
            continue
        profiles = t.get("targetProfile") or ()
        if not profiles:
            return None
        found.update(p.rsplit("/", 1)[-1] for p in profiles)
    return None if not found or "Resource" in found or "DomainResource" in found else frozenset(found)


def _type_code(t: dict) -> str:
    code = t["code"]
    if code in _SYSTEM_TYPES:
        for ext in t.get("extension", ()):
            if ext.get("url", "").endswith("structuredefinition-fhir-type"):
                return ext.get("valueUrl") or ext.get("valueUri") or _SYSTEM_TYPES[code]
        return _SYSTEM_TYPES[code]
    return code


def _bundle_resources(filename: str) -> list[dict]:
    raw = (DEFINITIONS / filename).read_bytes()
    if filename.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [e["resource"] for e in orjson.loads(raw)["entry"]]


@cache
def structures() -> Structures:
    """The R4 definitions, loaded on first use (about 0.3 s) and shared by the process."""
    sds = [
        r
        for f in ("profiles-types.json.gz", "profiles-resources.json.gz")
        for r in _bundle_resources(f)
        if r["resourceType"] == "StructureDefinition"
    ]
    return Structures(sds)


@cache
def resource_types() -> frozenset[str]:
    return structures().resource_types


def definitions_of(resource_type: str, filename: str = "profiles-resources.json.gz") -> list[dict]:
    """Official definition resources of one kind (OperationDefinition, CompartmentDefinition...)."""
    return [r for r in _bundle_resources(filename) if r["resourceType"] == resource_type]
