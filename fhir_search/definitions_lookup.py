"""The stored definitions validation asks for (fhir_api.store.conformance), by canonical URL.

Each process keeps what it found, per URL, until a StructureDefinition, ValueSet or CodeSystem
is written (here, or in another process: fhir_search.watch), so a write that carries extensions
costs a dictionary lookup, not a query.
"""
from __future__ import annotations

import threading
from typing import Any

import orjson

from fhir_api.store import conformance
from fhir_api.store.terminology import CodeSet, TerminologyError, bound_codes
from fhir_search import terminology
from fhir_search.watch import StoreWatch

RESOURCE_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem")
# A value set too large to hold as a set is not checked on write (the search modifiers and the
# operations still page through it in SQL).
MAX_CODES = 100_000

_watch = StoreWatch(*RESOURCE_TYPES)
_lock = threading.Lock()
_definitions: dict[str, dict[str, Any] | None] = {}
_codes: dict[str, CodeSet | None] = {}


def touch() -> None:
    _watch.touch()


def _fresh() -> None:
    if _watch.changed():
        with _lock:
            _definitions.clear()
            _codes.clear()


def structure_definition(url: str) -> dict[str, Any] | None:
    _fresh()
    if url not in _definitions:
        _definitions[url] = terminology.stored_definition("StructureDefinition", url)
    return _definitions[url]


def value_set_codes(url: str) -> CodeSet | None:
    _fresh()
    if url not in _codes:
        canonical = url.split("|", 1)[0]
        if terminology.stored_definition("ValueSet", canonical) is None:
            _codes[url] = bound_codes(url)  # shipped: the store's own, in memory
        else:
            try:
                rows = terminology.expansion(canonical)
                pairs = rows.concepts() if rows.query is None or rows.rows().count() <= MAX_CODES else None
            except TerminologyError:
                pairs = None
            _codes[url] = CodeSet(canonical, pairs, frozenset(c for _, c in pairs)) if pairs is not None else None
    return _codes[url]


def readable(resource_type: str, logical_id: str) -> dict[str, Any] | None:
    """A stored resource, only when the request's access reaches it (SMART scopes and consent)."""
    from fhir_api.store.models import Resource
    from fhir_search import access

    rows = Resource.objects.filter(resource_type=resource_type, logical_id=logical_id, deleted=False)
    visible = access.condition((resource_type,), "r")
    if visible is not None:
        rows = rows.filter(visible)
    data = rows.values_list("data", flat=True).first()
    return orjson.loads(data) if data else None


def register() -> None:
    conformance.register(conformance.Finder(structure_definition, value_set_codes, readable))
