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
Discriminators (profiling.html#discriminator) of every R4 kind: `value` and `pattern` (the fixed
or pattern value of the slice's element at the path), `exists` (the slice's element at the path
is required, min >= 1, or forbidden, max 0), `type` (the type of the value at the path: a choice's
type, a resource's resourceType) and `profile` (the value at the path conforms to a profile of
the slice's element, checked with this module; core profile URLs mean the type). A path may end
in `resolve()`: the Reference is followed to a contained resource, an entry of the Bundle being
checked, or a resource stored on this server that the request may read (relative or absolute
under FHIR_BASE_URL; `conformance.readable` applies the request's access), and the
slice's `targetProfile`s give the type or profiles. Not checked (an information issue says so):
`value`/`pattern` through resolve(), and `profile` discriminators naming profiles not held here.
A Reference element whose `targetProfile`s restrict its types refuses a reference to another
type (see `reference_targets`); whether a resolvable target conforms to a target profile is not
checked.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings

from fhir_api.store import conformance, invariants, reference_targets
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
    depth: int = 0  # profiles checked to tell slices apart (profile discriminators) nest
    _kids: dict[str, list[dict[str, Any]]] | None = None
    # Resources on this server that resolve() has read: (type, id) -> content or None.
    fetched: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)

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
        if isinstance(data, dict) and "Reference" in allowed and _profiles_of(el, True):
            self.reference_target(el, value)
        binding = el.get("binding") or {}
        if binding.get("strength") in ("required", "extensible") and binding.get("valueSet") \
                and _base_binding(el["path"]) != (binding["strength"], binding["valueSet"]):
            self.binding(el, binding, value)
        if self.full:
            for c in el.get("constraint", ()):
                if c.get("severity") == "error" and c.get("expression") and c.get("key") not in invariants.SKIPPED \
                        and isinstance(data, dict) and not c.get("source", "").startswith(CORE):
                    self.invariant(c, value)

    def reference_target(self, el: dict[str, Any], value: Value) -> None:
        """A Reference's target type against the profile's targetProfiles (their types)."""
        urls = _profiles_of(el, True)
        if any(not u.startswith(CORE) and conformance.structure_definition(u) is None for u in urls):
            return  # a target profile not held here: its type is unknown
        allowed = frozenset(_target_types(el))
        if "Resource" in allowed:
            return
        target, _ = reference_targets.pointed_type(value[0], self.resource, _full_urls(self.resource))
        if reference_targets.disallowed(target, allowed):
            self.error("structure", value[1], f"{el['path']} may reference {', '.join(sorted(allowed))} here, "
                       f"not a {target}")

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
        unchecked = self.unchecked(discriminators, sliced)
        if unchecked is not None:
            self.error("not-supported", per_parent[0][0][1] if per_parent else el["path"],
                       f"the slices of {el['path']} ({unchecked}) were not checked", "information")
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

    def unchecked(self, discriminators: Any, sliced: list[dict[str, Any]]) -> str | None:
        """Why these slices cannot be told apart here (None: they can)."""
        if not discriminators:
            return "no discriminator"
        for d in discriminators:
            kind, path = d.get("type"), d.get("path", "$this")
            if kind not in DISCRIMINATORS:
                return f"discriminator {kind}"
            if kind in ("value", "pattern") and "resolve()" in path:
                return f"discriminator {kind} through resolve()"
            if kind == "profile":
                for s in sliced:
                    target = self.element_at(s, path)
                    urls = _profiles_of(target[0], target[1]) if target else []
                    unknown = [u for u in urls if not u.startswith(CORE) and conformance.structure_definition(u) is None]
                    if unknown:
                        return f"discriminator profile: {unknown[0]} is not held here"
        return None

    def in_slice(self, s: dict[str, Any], discriminators: Any, value: Value) -> bool:
        """Does a value meet every discriminator of slice `s` (profiling.html#discriminator)?"""
        for d in discriminators:
            kind, path = d.get("type"), d.get("path", "$this")
            if kind in ("value", "pattern"):
                expected = self.discriminator_value(s, path)
                if expected is None or not any(_matches(found, expected) for found in _at(value[0], path)):
                    return False
                continue
            target = self.element_at(s, path)
            if target is None:
                return False
            el, resolved = target
            found = self.typed_at(value, path)
            if kind == "exists":
                # The slice says present (min >= 1) or absent (max 0) of the element at the path.
                if (el.get("max") == "0" and found) or (_int(el.get("min")) >= 1 and not found):
                    return False
            elif kind == "type":
                allowed = _target_types(el) if resolved else {t.get("code") for t in el.get("type", ())}
                if not allowed or not any(code in allowed for _, code in found):
                    return False
            elif kind == "profile":
                urls = _profiles_of(el, resolved)
                if not urls or not any(self.conforms(data, code, url) for data, code in found for url in urls):
                    return False
        return True

    def element_at(self, s: dict[str, Any], path: str) -> tuple[dict[str, Any], bool] | None:
        """The slice's element at a discriminator path, and whether the path ends in resolve()."""
        resolved = path == "resolve()" or path.endswith(".resolve()")
        if resolved:
            path = path[: -len("resolve()")].rstrip(".") or "$this"
        if path.startswith("$this."):
            path = path[len("$this."):]
        if path == "$this":
            return s, resolved
        for candidate in (f"{s['id']}.{path}", f"{s['id']}.{path}[x]"):
            if candidate in self.elements:
                return self.elements[candidate], resolved
        return None

    def typed_at(self, value: Value, path: str) -> list[tuple[Any, str]]:
        """The values at a discriminator path below a value, each with its type; resolve() follows
        a Reference to a contained resource, a Bundle entry or a resource on this server."""
        data, _, type_code = value
        current = [(data, _type_of(data, type_code))]
        for step in path.split("."):
            if step == "$this":
                continue
            nxt: list[tuple[Any, str]] = []
            for item, _code in current:
                if not isinstance(item, dict):
                    continue
                if step == "resolve()":
                    target = self.resolve(item)
                    if target is not None:
                        nxt.append((target, target["resourceType"]))
                elif step in item:
                    found = item[step]
                    nxt.extend((v, _type_of(v, "")) for v in (found if isinstance(found, list) else [found]))
                else:
                    for key, found in item.items():  # a choice: value -> valueQuantity is a Quantity
                        if key.startswith(step) and key[len(step):][:1].isupper():
                            code = key[len(step):]
                            code = code if structures().types.get(code) else code[0].lower() + code[1:]
                            nxt.extend((v, code) for v in (found if isinstance(found, list) else [found]))
            current = nxt
        return [(item, code) for item, code in current if item is not None]

    def resolve(self, reference: dict[str, Any]) -> dict[str, Any] | None:
        """The resource a Reference points at, when it is in the resource or on this server."""
        literal = reference.get("reference")
        if not isinstance(literal, str):
            return None
        if literal.startswith("#"):
            if literal == "#":
                return self.resource
            return next((c for c in self.resource.get("contained") or () if isinstance(c, dict)
                         and c.get("id") == literal[1:]), None)
        if self.resource.get("resourceType") == "Bundle":
            for entry in self.resource.get("entry") or ():
                if isinstance(entry, dict) and entry.get("fullUrl") == literal and isinstance(entry.get("resource"), dict):
                    return entry["resource"]
        where = reference_targets.local(literal, settings.FHIR_BASE_URL)
        if where is None:
            return None
        if where not in self.fetched:
            self.fetched[where] = conformance.readable(*where)
        return self.fetched[where]

    def conforms(self, data: Any, type_code: str, url: str) -> bool:
        """Does a value conform to a profile (or, for a core URL, is it of that type)?"""
        if url.startswith(CORE):
            return type_code == url[len(CORE):].split("|", 1)[0]
        if not isinstance(data, dict):
            return False
        try:
            issues = check_value(data, type_code, url, self.full, self.depth + 1, self.resource)
        except ProfileError:
            return False
        return not any(i["severity"] in ("error", "fatal") for i in issues)

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


DISCRIMINATORS = ("value", "pattern", "exists", "type", "profile")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _type_of(data: Any, declared: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("resourceType"), str):
        return data["resourceType"]
    return declared


def _profiles_of(el: dict[str, Any], resolved: bool) -> list[str]:
    key = "targetProfile" if resolved else "profile"
    return [p for t in el.get("type", ()) for p in t.get(key, ()) if isinstance(p, str)]


def _target_types(el: dict[str, Any]) -> set[str]:
    """The resource types of a Reference element's targetProfiles (core ones by their name)."""
    out = set()
    for url in _profiles_of(el, True):
        if url.startswith(CORE):
            out.add(url[len(CORE):].split("|", 1)[0])
        else:
            sd = conformance.structure_definition(url)
            if sd is not None and profile_type(sd):
                out.add(profile_type(sd))
    return out


def _full_urls(resource: dict[str, Any]) -> dict[str, str]:
    if resource.get("resourceType") != "Bundle":
        return {}
    return {e["fullUrl"]: e["resource"]["resourceType"] for e in resource.get("entry") or ()
            if isinstance(e, dict) and isinstance(e.get("fullUrl"), str) and isinstance(e.get("resource"), dict)
            and isinstance(e["resource"].get("resourceType"), str)}


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
    rtype = resource.get("resourceType")
    return check_value(resource, str(rtype), url, full, depth, resource)


def check_value(data: dict[str, Any], type_code: str, url: str, full: bool, depth: int,
                resource: dict[str, Any]) -> list[Issue]:
    """The issues of a resource or data type value (in `resource`) against a profile held here."""
    sd = conformance.structure_definition(url)
    if sd is None:
        raise ProfileError(f"The profile {url} is not known to this server")
    if depth > MAX_DEPTH:
        raise ProfileError(f"The profile {url} is nested in more than {MAX_DEPTH} others")
    if profile_type(sd) != type_code:
        raise ProfileError(f"The profile {url} constrains {profile_type(sd)}, not {type_code}")
    elements = _elements(sd)
    if not elements:
        raise ProfileError(f"The profile {url} has neither a snapshot nor a differential")
    issues: list[Issue] = []
    base = sd.get("baseDefinition")
    if not sd.get("snapshot") and isinstance(base, str) and not base.startswith(CORE):
        issues += check_value(data, type_code, base, full, depth + 1, resource)
    by_id = {el.get("id") or el["path"]: el for el in elements if isinstance(el.get("path"), str)}
    checker = _Checker(issues, full, by_id, url.split("|", 1)[0], resource, depth)
    root = (data, type_code, type_code)
    root_el = by_id.get(type_code)
    if root_el is not None and full:
        checker.constrain({k: v for k, v in root_el.items() if k == "constraint"} | {"path": type_code}, root)
    checker.apply(type_code, [root])
    return issues
