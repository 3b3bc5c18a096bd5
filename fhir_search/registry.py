"""The search parameter registry, loaded from the official R4 SearchParameter bundle.

https://hl7.org/fhir/R4/searchparameter.html -- parameters come from data, not code: the
project ships `definitions/search-parameters.json.gz` (the official file) and a
SearchParameter resource stored on this server is added the same way (`register`).
"""
from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import orjson

DEFINITIONS = Path(__file__).resolve().parent / "definitions"

# Parameters every resource type has (their base is Resource or DomainResource).
COMMON_BASES = ("Resource", "DomainResource")


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # number date string token reference composite quantity uri special
    url: str
    base: tuple[str, ...]
    expression: str  # the whole expression, all bases joined with "|"
    description: str = ""
    targets: tuple[str, ...] = ()
    # composite: (component definition url, expression relative to the composite's element)
    components: tuple[tuple[str, str], ...] = ()
    modifiers: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    multiple_or: bool = True
    multiple_and: bool = True
    _per_type: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def expression_for(self, resource_type: str) -> str:
        """The part of the expression that applies to one resource type.

        Shared definitions such as `clinical-patient` join one path per type with `|`;
        extraction for an Observation only needs the Observation part.
        """
        cached = self._per_type.get(resource_type)
        if cached is not None:
            return cached
        parts = split_union(self.expression)
        own = [p for p in parts if _starts_with_type(p, resource_type)]
        if not own:  # Resource-level parameters: "Resource.meta.tag" applies to every type
            own = [p for p in parts if any(_starts_with_type(p, b) for b in COMMON_BASES)]
            own = [_retarget(p, resource_type) for p in own]
        if not own and resource_type in self.base:
            # Errata: a few official expressions leave out the type ("name | alias" for
            # InsurancePlan-name); a path that starts in lower case is relative to the type.
            own = [f"{resource_type}.{p}" for p in parts if p[:1].islower()]
        result = " | ".join(own)
        self._per_type[resource_type] = result
        return result


def _starts_with_type(path: str, resource_type: str) -> bool:
    path = path.lstrip("(")
    return path == resource_type or path.startswith(resource_type + ".")


def _retarget(path: str, resource_type: str) -> str:
    opening = len(path) - len(path.lstrip("("))
    rest = path[opening:]
    for base in COMMON_BASES:
        if rest.startswith(base + "."):
            return path[:opening] + resource_type + rest[len(base):]
    return path


def split_top_level(expression: str, separator: str) -> list[str] | None:
    """Split on `separator` outside parentheses and 'strings'; None if they do not balance."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'" and (i == 0 or expression[i - 1] != "\\"):
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None
        elif ch == separator and depth == 0:
            parts.append(expression[start:i])
            start = i + 1
    parts.append(expression[start:])
    return parts if depth == 0 and not quote else None


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on its top-level `|` (not inside parentheses or strings)."""
    parts = split_top_level(expression, "|") or [expression]
    return [p.strip() for p in parts if p.strip()]


# Errata of the official R4 definitions: DocumentReference-relationship names its components
# relatesto (reference) then relation (token) but gives them the expressions the other way
# round ("code" then "target"). Keyed by URL; the value is the corrected component list.
_COMPONENT_ERRATA = {
    "http://hl7.org/fhir/SearchParameter/DocumentReference-relationship": (
        ("http://hl7.org/fhir/SearchParameter/DocumentReference-relatesto", "target"),
        ("http://hl7.org/fhir/SearchParameter/DocumentReference-relation", "code"),
    ),
}


def from_resource(sp: dict) -> SearchParam:
    """Build a SearchParam from a SearchParameter resource (official or posted)."""
    components = tuple((c["definition"], c["expression"]) for c in sp.get("component", ()))
    components = _COMPONENT_ERRATA.get(sp.get("url", ""), components)
    return SearchParam(
        code=sp["code"],
        type=sp["type"],
        url=sp.get("url", ""),
        base=tuple(sp.get("base", ())),
        expression=sp.get("expression", ""),
        description=sp.get("description", ""),
        targets=tuple(sp.get("target", ())),
        components=components,
        modifiers=tuple(sp.get("modifier", ())),
        chains=tuple(sp.get("chain", ())),
        multiple_or=sp.get("multipleOr", True),
        multiple_and=sp.get("multipleAnd", True),
    )


class Registry:
    """Search parameters by resource type and code, and by canonical URL.

    Two layers: the official R4 definitions (fixed) and the parameters of SearchParameter
    resources stored on this server (`register`/`unregister`, kept current by
    fhir_search.stored_params). A stored parameter replaces an official one with the same
    URL, or with the same code on the same base; removing it brings the official one back.
    The lookup tables are rebuilt as a whole and swapped in, so readers never see half
    a change; `generation` counts the changes, for caches built from the registry.
    """

    def __init__(self, params: list[SearchParam]) -> None:
        self._lock = threading.Lock()
        self._official = list(params)
        self._custom: dict[str, SearchParam] = {}  # by URL
        self.generation = 0
        self._rebuild()

    def _rebuild(self) -> None:
        by_type: dict[str, dict[str, SearchParam]] = {}
        common: dict[str, SearchParam] = {}
        by_url: dict[str, SearchParam] = {}
        custom_urls = set(self._custom)
        for param in [*(p for p in self._official if p.url not in custom_urls), *self._custom.values()]:
            if param.url:
                by_url[param.url] = param
            for base in param.base:
                if base in COMMON_BASES:
                    common[param.code] = param
                else:
                    by_type.setdefault(base, {})[param.code] = param
        self._by_type, self._common, self._by_url = by_type, common, by_url
        self.generation += 1

    def register(self, param: SearchParam) -> None:
        """Add or replace a parameter (a SearchParameter resource written to the server)."""
        with self._lock:
            self._custom[param.url] = param
            self._rebuild()

    def unregister(self, url: str) -> SearchParam | None:
        """Remove a parameter registered with `register` (its SearchParameter was deleted)."""
        with self._lock:
            removed = self._custom.pop(url, None)
            if removed is not None:
                self._rebuild()
            return removed

    def replace_custom(self, params: list[SearchParam]) -> None:
        """Make the registered parameters exactly these (a reload of the stored ones)."""
        with self._lock:
            self._custom = {p.url: p for p in params}
            self._rebuild()

    def custom(self) -> list[SearchParam]:
        return list(self._custom.values())

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self._by_type.get(resource_type, {}).get(code) or self._common.get(code)

    def for_type(self, resource_type: str) -> dict[str, SearchParam]:
        """Every parameter of a type, the common ones (_id, _lastUpdated...) included."""
        return {**self._common, **self._by_type.get(resource_type, {})}

    def by_url(self, url: str) -> SearchParam | None:
        return self._by_url.get(url)


# Parameters for every type that the official bundle does not define as SearchParameters.
_EXTRA = (
    {"resourceType": "SearchParameter", "url": "http://hl7.org/fhir/SearchParameter/filter", "code": "_filter",
     "base": ["Resource"], "type": "special",
     "description": "Filter expression (https://hl7.org/fhir/R4/search_filter.html)"},
    {"resourceType": "SearchParameter", "code": "_list", "base": ["Resource"], "type": "special",
     "description": "Resources that are entries of the List with this id (https://hl7.org/fhir/R4/search.html#list)"},
)


@cache
def registry() -> Registry:
    raw = gzip.decompress((DEFINITIONS / "search-parameters.json.gz").read_bytes())
    params = [from_resource(e["resource"]) for e in orjson.loads(raw)["entry"]]
    return Registry(params + [from_resource(sp) for sp in _EXTRA])
