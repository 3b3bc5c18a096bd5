"""Value sets and code systems for search (`:in`, `:not-in`, `:above`, `:below`) and the terminology operations.

https://hl7.org/fhir/R4/search.html#token over https://hl7.org/fhir/R4/valueset.html#compose
and codesystem.html#hierarchy. Value sets come from the server's store (ValueSet resources,
found by `url`, or `ValueSet/[id]`) and else from the R4 ones the project ships; code systems
from the concept tables (fhir_search.concepts), which hold the stored and the shipped ones.
Expansion is SQL over those tables (fhir_search.expansion).

What cannot be expanded (an unknown value set or code system, another filter) raises a
TerminologyError, which search answers with 400 in strict mode and the operations with 404
or 422. Expansions are cached per URL; the cache is dropped when stored ValueSets or
CodeSystems change (fhir_search.watch).
"""
from __future__ import annotations

import threading
from typing import Any

from django.db.models import Q

from fhir_api.store import jsonio
from fhir_api.store.models import Resource
from fhir_api.store.terminology import RESOURCE_TYPES, Concept, TerminologyError, shipped
from fhir_search import concepts
from fhir_search.expansion import Expansion
from fhir_search.expansion import expand as expand_resource
from fhir_search.models import ConceptAncestor, UriIndex
from fhir_search.watch import StoreWatch

__all__ = ["RESOURCE_TYPES", "Concept", "TerminologyError", "above", "below", "expand", "expansion", "find"]


def _stored(resource_type: str, reference: str) -> dict[str, Any] | None:
    """A ValueSet/CodeSystem/ConceptMap stored here, by canonical URL or by `Type/id`."""
    rows = Resource.objects.filter(resource_type=resource_type, deleted=False)
    if reference.startswith(resource_type + "/"):
        rows = rows.filter(logical_id=reference.split("/", 1)[1])
    else:
        urls = UriIndex.objects.filter(code="url", resource_type=resource_type, value=reference)
        rows = rows.filter(pk__in=urls.values("resource_id"))
    data = rows.order_by("-last_updated").values_list("data", flat=True).first()
    return jsonio.loads(data) if data else None


def stored_definition(resource_type: str, url: str) -> dict[str, Any] | None:
    """A definition stored here by canonical URL (the latest), not the shipped ones."""
    return _stored(resource_type, url.split("|", 1)[0])


def find(resource_type: str, reference: str) -> dict[str, Any] | None:
    """A ValueSet or CodeSystem by canonical URL (stored first, then shipped) or `Type/id`."""
    url = reference.split("|", 1)[0]  # a version is not told apart: the latest one is used
    return _stored(resource_type, url) or shipped().get(resource_type, {}).get(url)


# -- caches ------------------------------------------------------------------------------

_watch = StoreWatch(*RESOURCE_TYPES)
_lock = threading.Lock()
_expansions: dict[str, Expansion] = {}


def touch() -> None:
    """A ValueSet or CodeSystem was written in this process: recheck before the next use."""
    _watch.touch()


def _fresh() -> None:
    if _watch.changed():
        with _lock:
            _expansions.clear()


def expansion_of(vs: dict[str, Any]) -> Expansion:
    return expand_resource(vs, lambda url: find("ValueSet", url))


def expansion(reference: str) -> Expansion:
    """The expansion of a value set, by canonical URL or `ValueSet/[id]`."""
    _fresh()
    found = _expansions.get(reference)
    if found is None:
        vs = find("ValueSet", reference)
        if vs is None:
            raise TerminologyError(f"The value set {reference} is not known to this server")
        found = expansion_of(vs)
        _expansions[reference] = found
    return found


def expand(reference: str) -> frozenset[Concept]:
    """The (system, code) pairs of a value set (for small sets: it reads them all)."""
    return expansion(reference).concepts()


def _subsumption(system: str, code: str, below: bool) -> Expansion:
    header = concepts.code_system(system)
    found = concepts.concept(header, code)
    if found is None:
        return Expansion([(system, code, None)])
    pairs = ConceptAncestor.objects.filter(**({"ancestor": found} if below else {"descendant": found}))
    return Expansion(query=Q(id__in=pairs.values("descendant_id" if below else "ancestor_id")))


def below(system: str, code: str) -> Expansion:
    """A code and every code it subsumes (`:below`)."""
    return _subsumption(system, code, below=True)


def above(system: str, code: str) -> Expansion:
    """A code and every code that subsumes it (`:above`)."""
    return _subsumption(system, code, below=False)
