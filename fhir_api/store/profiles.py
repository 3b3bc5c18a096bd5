"""Validation against profiles: StructureDefinitions with derivation `constraint` that the server holds.

https://hl7.org/fhir/R4/profiling.html and https://hl7.org/fhir/R4/elementdefinition.html --
a resource that claims a profile in `meta.profile` (or is checked with `$validate?profile=`)
is checked against the profile's elements, on top of the base R4 validation:

- cardinality (`min`/`max`, per parent value), `fixed[x]` (exactly equal) and `pattern[x]`
  (the instance holds at least what the pattern says), allowed `type`s of choice elements;
- `binding` (required: an error; extensible: a warning at the full level) on value sets the
  server can list (its own, stored or shipped);
- slicing (`slicing.discriminator` of type `value` or `pattern`, by a path or `$this`, and
  extensions sliced by `url`): each value goes to the slice whose discriminators it matches,
  slices' cardinalities are checked, the elements under a slice apply to its values only, and
  a `closed` slicing refuses values no slice takes;
- `constraint`s of severity error (at the full level), compiled once per profile with fhirpathpy.

The profile's snapshot is used when it has one; otherwise its differential, applied after its
base profile when that is a profile held here too (the base R4 rules are checked anyway).
Discriminators of type `exists`, `type` and `profile` are reported as not checked.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir_api.store import conformance, invariants
from fhir_api.store.errors import Issue, issue
from fhir_api.store.structure import structures
from fhir_api.store.terminology import CodeSet

CORE = "http://hl7.org/fhir/StructureDefinition/"
MAX_DEPTH = 10  # profiles based on profiles based on profiles...

Value = tuple[Any, str, str]  # (JSON value, FHIRPath, type code)


class ProfileError(ValueError):
    """The profile cannot be used (unknown, not for this type, no elements)."""


def _elements(sd: dict[str, Any]) -> list[dict[str, Any]]:
    for part in ("snapshot", "differential"):
        found = (sd.get(part) or {}).get("element")
        if found:
            return found
    return []


@dataclass
class _Checker:
    issues: list[Issue]
    full: bool
    elements: dict[str, dict[str, Any]]  # by id
    url: str
    resource: dict[str, Any]
    _kids: dict[str, list[dict[str, Any]]] | None = None

    def error(self, code: str, path: str, message: str, severity: str = "error") -> None:
        self.issues.append(issue(severity, code, f"{message} (profile {self.url})", path))

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        """Direct child elements of an element id (its slices are not children)."""
        if self._kids is None:
            self._kids = {}
            for el_id, el in self.elements.items():
                parent, dot, last = el_id.rpartition(".")
                if dot and ":" not in last:
                    self._kids.setdefault(parent, []).append(el)
        return self._kids.get(parent_id, [])

    def slices(self, el_id: str) -> list[dict[str, Any]]:
        return [el for i, el in self.elements.items() if i.startswith(el_id + ":") and "." not in i[len(el_id):]]

    def apply(self, parent_id: str, parents: list[Value]) -> None:
        for el in self.children(parent_id):
            self.element(el, parents)

    def element(self, el: dict[str, Any], parents: list[Value]) -> None:
        el_id = el.get("id") or el["path"]
        name = el_id.rsplit(".", 1)[-1]
        per_parent = [(parent, list(_values(parent, name, self.base_type(el)))) for parent in parents]
        every = [v for _, found in per_parent for v in found]
        self.cardinality(el, per_parent, el["path"])
        for value in every:
            self.constrain(el, value)
        sliced = self.slices(el_id)
        if el.get("slicing") and sliced:
            self.slicing(el, sliced, per_parent)
        self.apply(el_id, [v for v in every if isinstance(v[0], dict)])

    def base_type(self, el: dict[str, Any]) -> list[str]:
        return [t.get("code") for t in el.get("type", ()) if t.get("code")]

    def cardinality(self, el: dict[str, Any], per_parent: list[tuple[Value, list[Value]]], what: str) -> None:
        low = el.get("min")
        high = el.get("max")
        for parent, found in per_parent:
            if isinstance(low, int) and len(found) < low:
                self.error("required", parent[1], f"{what} needs at least {low} value(s), found {len(found)}")
            if isinstance(high, str) and high != "*" and high.isdigit() and len(found) > int(high):
                where = found[int(high)][1] if found else parent[1]
                self.error("structure", where, f"{what} allows at most {high} value(s), found {len(found)}")

    def constrain(self, el: dict[str, Any], value: Value) -> None:
        data, path, type_code = value
        for key, expected in el.items():
            if key.startswith("fixed") and data != expected:
                self.error("value", path, f"{el['path']} must be exactly {_show(expected)}")
            elif key.startswith("pattern") and not _matches(data, expected):
                self.error("value", path, f"{el['path']} must match the pattern {_show(expected)}")
        allowed = self.base_type(el)
        if allowed and type_code and type_code not in allowed and el["path"].endswith("[x]"):
            self.error("structure", path, f"{el['path']} may be {', '.join(allowed)} here, not {type_code}")
        binding = el.get("binding") or {}
        if binding.get("strength") in ("required", "extensible") and binding.get("valueSet") \
                and _base_binding(el["path"]) != (binding["strength"], binding["valueSet"]):
            self.binding(el, binding, value)
        if self.full:
            for c in el.get("constraint", ()):
                if c.get("severity") == "error" and c.get("expression") and c.get("key") not in invariants.SKIPPED \
                        and isinstance(data, dict) and not c.get("source", "").startswith(CORE):
                    self.invariant(c, value)

    def binding(self, el: dict[str, Any], binding: dict[str, Any], value: Value) -> None:
        strength = binding["strength"]
        if strength == "extensible" and not self.full:
            return
        codes = conformance.value_set_codes(binding["valueSet"])
        if codes is None:
            return
        data, path, type_code = value
        if _in_value_set(data, codes):
            return
        severity = "error" if strength == "required" else "warning"
        self.error("code-invalid", path, f"{_show(data)} is not in the value set {binding['valueSet']} "
                   f"({strength} binding of {el['path']})", severity)

    def invariant(self, c: dict[str, Any], value: Value) -> None:
        run = _compiled(c["expression"])
        if run is None:
            return
        from fhirpathpy.engine.nodes import ResourceNode

        try:
            result = run(ResourceNode.create_node(value[0], None), {"resource": self.resource,
                                                                  "rootResource": self.resource})
        except Exception:  # noqa: BLE001 -- an engine gap is not the resource's fault
            return
        if result == [False]:
            self.error("invariant", value[1], f"{c.get('key')}: {c.get('human', '')} ({c['expression']})")

    def slicing(self, el: dict[str, Any], sliced: list[dict[str, Any]],
                per_parent: list[tuple[Value, list[Value]]]) -> None:
        slicing = el["slicing"]
        discriminators = slicing.get("discriminator", ())
        unsupported = [d for d in discriminators if d.get("type") not in ("value", "pattern")]
        if unsupported or not discriminators:
            kinds = ", ".join(sorted({d.get("type", "?") for d in unsupported})) or "none"
            self.error("not-supported", per_parent[0][0][1] if per_parent else el["path"],
                       f"the slices of {el['path']} (discriminator {kinds}) were not checked", "information")
            return
        for parent, found in per_parent:
            taken: dict[str, list[Value]] = {s["sliceName"]: [] for s in sliced}
            for value in found:
                home = next((s["sliceName"] for s in sliced if self.in_slice(s, discriminators, value)), None)
                if home is not None:
                    taken[home].append(value)
                elif slicing.get("rules") == "closed":
                    self.error("structure", value[1], f"{el['path']} is sliced (closed) and this value fits no slice")
            for s in sliced:
                self.cardinality(s, [(parent, taken[s["sliceName"]])], f"{el['path']}:{s['sliceName']}")
                for value in taken[s["sliceName"]]:
                    self.constrain(s, value)
                self.apply(s["id"], [v for v in taken[s["sliceName"]] if isinstance(v[0], dict)])

    def in_slice(self, s: dict[str, Any], discriminators: Any, value: Value) -> bool:
        for d in discriminators:
            path = d.get("path", "$this")
            expected = self.discriminator_value(s, path)
            if expected is None:
                return False
            if not any(_matches(found, expected) for found in _at(value[0], path)):
                return False
        return True

    def discriminator_value(self, s: dict[str, Any], path: str) -> Any:
        if path == "$this":
            target = s
        else:
            target = self.elements.get(f"{s['id']}.{path}")
            if target is None and path == "url":
                # Extensions sliced by url: the slice names the extension's definition.
                profiles = [p for t in s.get("type", ()) for p in t.get("profile", ())]
                return profiles[0] if profiles else None
            if target is None:
                return None
        for key, expected in target.items():
            if key.startswith(("fixed", "pattern")):
                return expected
        return None


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    from fhirpathpy import compile as compile_fhirpath

    try:
        return compile_fhirpath(expression, invariants.model(), invariants.OPTIONS)
    except Exception:  # noqa: BLE001
        return None


def _values(parent: Value, name: str, types: list[str]) -> Iterator[Value]:
    """The values of one child element of a parent value, with their FHIRPaths and types."""
    data, path, _ = parent
    if not isinstance(data, dict):
        return
    if name.endswith("[x]"):
        stem = name[:-3]
        for key, found in data.items():
            if key.startswith(stem) and key[len(stem):][:1].isupper():
                code = key[len(stem):]
                code = code if structures().types.get(code) else code[0].lower() + code[1:]
                yield from _each(found, f"{path}.{stem}.ofType({code})", code)
        return
    if name in data:
        yield from _each(data[name], f"{path}.{name}", types[0] if len(types) == 1 else "")


def _each(found: Any, path: str, type_code: str) -> Iterator[Value]:
    if isinstance(found, list):
        for i, item in enumerate(found):
            if item is not None:
                yield item, f"{path}[{i}]", type_code
    elif found is not None:
        yield found, path, type_code


def _at(data: Any, path: str) -> list[Any]:
    """The values at a simple dotted path ("coding.code") below a value; `$this` is the value."""
    if path == "$this":
        return [data]
    current = [data]
    for step in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and step in item:
                value = item[step]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def _matches(data: Any, pattern: Any) -> bool:
    """Does an instance value hold a pattern (elementdefinition.html#ElementDefinition.pattern_x_)?"""
    if isinstance(pattern, dict):
        return isinstance(data, dict) and all(_matches(data.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = data if isinstance(data, list) else []
        return all(any(_matches(item, p) for item in items) for p in pattern)
    return data == pattern


def _in_value_set(data: Any, codes: CodeSet) -> bool:
    if isinstance(data, str):
        return data in codes.codes
    if not isinstance(data, dict):
        return True
    codings = data.get("coding") if "coding" in data else [data] if "code" in data else []
    codings = [c for c in codings if isinstance(c, dict) and isinstance(c.get("code"), str)]
    if not codings:
        return True  # text only: nothing to judge
    return any((c.get("system"), c["code"]) in codes.concepts if c.get("system") else c["code"] in codes.codes
               for c in codings)


@lru_cache(maxsize=4096)
def _base_binding(path: str) -> tuple[str, str] | None:
    """The binding the base R4 definition gives an element path (already checked there)."""
    steps = path.split(".")
    node, element = steps[0], None
    s = structures()
    for step in steps[1:]:
        element = s.children(node).get(step[:-3] if step.endswith("[x]") else step)
        if element is None:
            return None
        node = element.child_node(element.types[0] if element.types else "Element")
    return element.binding if element is not None else None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def profile_type(sd: dict[str, Any]) -> str | None:
    return sd.get("type") if isinstance(sd.get("type"), str) else None


def check(resource: dict[str, Any], url: str, full: bool, depth: int = 0) -> list[Issue]:
    """The issues of a resource against the profile at `url` (held here); ProfileError if unusable."""
    sd = conformance.structure_definition(url)
    if sd is None:
        raise ProfileError(f"The profile {url} is not known to this server")
    rtype = resource.get("resourceType")
    if profile_type(sd) != rtype:
        raise ProfileError(f"The profile {url} constrains {profile_type(sd)}, not {rtype}")
    elements = _elements(sd)
    if not elements:
        raise ProfileError(f"The profile {url} has neither a snapshot nor a differential")
    issues: list[Issue] = []
    base = sd.get("baseDefinition")
    if not sd.get("snapshot") and isinstance(base, str) and not base.startswith(CORE) and depth < MAX_DEPTH:
        issues += check(resource, base, full, depth + 1)
    by_id = {el.get("id") or el["path"]: el for el in elements if isinstance(el.get("path"), str)}
    checker = _Checker(issues, full, by_id, url.split("|", 1)[0], resource)
    root = (resource, rtype, rtype)
    root_el = by_id.get(rtype)
    if root_el is not None and full:
        checker.constrain({k: v for k, v in root_el.items() if k == "constraint"} | {"path": rtype}, root)
    checker.apply(rtype, [root])
    return issues
