"""Where validation finds the definitions users store: profiles, extensions and their value sets.

https://hl7.org/fhir/R4/profiling.html -- StructureDefinitions, ValueSets and CodeSystems
stored on the server (POSTed, or loaded from a package by `manage.py load_package`) are found by
canonical URL through the search index, which lives a floor above the store. So the floor above
registers how to find them (`register`, from fhir_search's AppConfig.ready), as the design asks
of a lower module that needs something from above; without it (a bare store) nothing stored is
known and only the shipped R4 definitions apply.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_api.store.terminology import CodeSet, bound_codes


@dataclass(frozen=True)
class Finder:
    structure_definition: Callable[[str], dict[str, Any] | None]  # a stored SD by canonical URL
    value_set_codes: Callable[[str], CodeSet | None]  # the codes of a stored or shipped value set
    # A stored resource (type, id) the current request may read, for resolve() in slicing; the
    # floor above knows the request's access, so a profile cannot probe what the client cannot see.
    readable: Callable[[str, str], dict[str, Any] | None] = lambda _type, _id: None


_finder: Finder | None = None


def register(finder: Finder) -> None:
    global _finder
    _finder = finder


def structure_definition(url: str) -> dict[str, Any] | None:
    """A stored StructureDefinition (profile or extension definition) by URL (`|version` ignored)."""
    return _finder.structure_definition(url.split("|", 1)[0]) if _finder is not None else None


def readable(resource_type: str, logical_id: str) -> dict[str, Any] | None:
    """A stored resource the current request may read (None: not there, not readable, or a bare store)."""
    return _finder.readable(resource_type, logical_id) if _finder is not None else None


def value_set_codes(url: str) -> CodeSet | None:
    """The codes of a value set, stored or shipped; None when they cannot be listed."""
    return _finder.value_set_codes(url) if _finder is not None else bound_codes(url)
