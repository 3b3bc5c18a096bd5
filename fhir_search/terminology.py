"""Value set expansion and code system subsumption for the token modifiers.

https://hl7.org/fhir/R4/search.html#token (`:in`, `:not-in`, `:above`, `:below`) over
https://hl7.org/fhir/R4/valueset.html#compose and codesystem.html#hierarchy -- a small
terminology service, enough for search:

value sets and code systems come from the server's store (ValueSet and CodeSystem
resources, found by `url`, or `ValueSet/[id]`) and else from the R4 ones the project ships;
the expansion itself is `fhir_api.store.terminology`'s engine.

What cannot be expanded (an unknown value set or code system, another filter) raises a
TerminologyError, which search answers with 400 in strict mode. Expansions are cached per
URL; the cache is dropped when stored ValueSets or CodeSystems change (fhir_search.watch).
"""
from __future__ import annotations

import threading
from typing import Any

from fhir_api.store import jsonio
from fhir_api.store.models import Resource
from fhir_api.store.terminology import (
    RESOURCE_TYPES,
    Concept,
    Expander,
    Hierarchy,
    TerminologyError,
    hierarchy_of,
    shipped,
)
from fhir_search.models import UriIndex
from fhir_search.watch import StoreWatch

__all__ = ["RESOURCE_TYPES", "Concept", "Hierarchy", "TerminologyError", "above", "below", "expand", "hierarchy"]


# -- where definitions come from ---------------------------------------------------------


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


def find(resource_type: str, reference: str) -> dict[str, Any] | None:
    """A ValueSet or CodeSystem by canonical URL (stored first, then shipped) or `Type/id`."""
    url = reference.split("|", 1)[0]  # a version is not told apart: the latest one is used
    return _stored(resource_type, url) or shipped()[resource_type].get(url)


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
        cs = find("CodeSystem", system)
        if cs is None:
            raise TerminologyError(f"The code system {system} is not known to this server")
        found = hierarchy_of(cs)
        _hierarchies[system] = found
    return found


_expander = Expander(lambda reference: find("ValueSet", reference), hierarchy)


def expand(reference: str) -> frozenset[Concept]:
    """The (system, code) pairs of a value set, by canonical URL or `ValueSet/[id]`."""
    _fresh()
    found = _expansions.get(reference)
    if found is None:
        found = frozenset(_expander.expand(reference))
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
