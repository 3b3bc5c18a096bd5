"""SearchParameter resources stored on this server, active in the search registry.

https://hl7.org/fhir/R4/searchparameter.html -- a SearchParameter written through the
repository becomes a parameter of the registry: new writes index it at once, searches can
use it, and `$reindex` (or `manage.py reindex`) indexes the resources stored before it.
Deleting it removes it from the registry and drops its index rows.

Only a SearchParameter this server can work with becomes active: not retired, of a type
it indexes (not `special`), on known base types, with an expression it can evaluate.
Any other one is stored all the same (it is a valid resource: the R4 examples include
SearchParameters with only an XPath, or FHIRPath functions fhirpathpy lacks) and stays
inactive; `inactive()` says why, and `$reindex` reports it.

The registry of each process is reloaded from the stored SearchParameters lazily: on first
use (no query at import time) and whenever fhir_search.watch sees that they changed,
which a process notices at once for its own writes and within FHIR_DEFINITIONS_REFRESH
seconds for other processes' (see watch.py for why that trade-off).
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from fhir_api.store import jsonio
from fhir_api.store.models import Resource, ResourceVersion
from fhir_api.store.structure import resource_types
from fhir_search import extraction, indexing
from fhir_search.params import TYPES
from fhir_search.registry import COMMON_BASES, SearchParam, from_resource, registry
from fhir_search.watch import StoreWatch

logger = logging.getLogger(__name__)

RESOURCE_TYPE = "SearchParameter"
_watch = StoreWatch(RESOURCE_TYPE)


def ensure_current(force: bool = False) -> None:
    """Bring the registry in line with the stored SearchParameters, if they changed."""
    if _watch.changed(force):
        try:
            load()
        except BaseException:
            _watch.forget()  # try again on the next use rather than keep a half-done load
            raise


def touch() -> None:
    _watch.touch()


def problem(content: dict[str, Any]) -> str | None:
    """Why a stored SearchParameter is not active on this server, or None if it is."""
    kind = content.get("type")
    if content.get("status") == "retired":
        return "it is retired"
    if kind not in TYPES:
        return f"SearchParameter.type {kind!r} is not one this server can index"
    if not content.get("url") or not content.get("code") or not content.get("base"):
        return "SearchParameter.url, code and base are needed"
    unknown = [b for b in content.get("base", ()) if b not in resource_types() and b not in COMMON_BASES]
    if unknown:
        return f"SearchParameter.base names unknown resource types: {', '.join(unknown)}"
    if not content.get("expression"):
        return "SearchParameter.expression is needed for the server to index the parameter"
    param = from_resource(content)
    for base in param.base:
        root = "Resource" if base in COMMON_BASES else base
        own = param.expression_for(base) if base not in COMMON_BASES else param.expression
        if not own:
            return f"SearchParameter.expression has no path for {base}"
        found = extraction.expression_problem(own, root) if root != "Resource" else None
        if found:
            return f"SearchParameter.expression: {found}"
    return None


@lru_cache(maxsize=4096)
def _read(data: str) -> tuple[SearchParam | None, str | None]:
    """(parameter, None) for a usable stored SearchParameter's JSON, else (None, why).

    Cached by the JSON text: a reload after one SearchParameter changed does not check all
    the others again (their expressions are evaluated once per version).
    """
    try:
        content = jsonio.loads(data)
        reason = problem(content)
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"it cannot be read ({exc})"
    return (from_resource(content), None) if reason is None else (None, reason)


_inactive: dict[str, str] = {}  # logical id -> why


def inactive() -> dict[str, str]:
    """The stored SearchParameters that are not active, by id, with the reason."""
    ensure_current()
    return dict(_inactive)


def load() -> None:
    """Register exactly the active stored SearchParameters (the last written wins a URL)."""
    params: dict[str, SearchParam] = {}
    reasons: dict[str, str] = {}
    rows = Resource.objects.filter(resource_type=RESOURCE_TYPE, deleted=False).order_by("last_updated", "id")
    for logical_id, data in rows.values_list("logical_id", "data"):
        param, reason = _read(data)
        if param is not None:
            params[param.url] = param
        else:
            reasons[logical_id] = reason or ""
    _inactive.clear()
    _inactive.update(reasons)
    apply(list(params.values()))


def apply(params: list[SearchParam]) -> None:
    """Make these the registered parameters and drop what was built from the old ones."""
    reg = registry()
    old = set(reg.custom())
    if old == set(params):
        return
    reg.replace_custom(params)
    for param in old ^ set(params):
        extraction.forget(param)
    indexing.forget_type()
    from fhir_search.params.composite import component_types

    component_types.cache_clear()


def written(resource: Resource, content: dict[str, Any] | None) -> None:
    """A SearchParameter was written in this transaction (called by the receiver).

    The registry reloads on its next use (`ensure_current`, which the receiver calls once
    per write or per batch, so a bundle of many SearchParameters loads them once).
    """
    touch()
    if content is not None:
        _, reason = _read(resource.data)
        if reason is not None and content.get("status") != "retired":
            logger.warning("SearchParameter/%s is stored but not active: %s", resource.logical_id, reason)
        return
    previous = _previous(resource)
    if previous is not None:
        ensure_current()
        _drop_rows(previous)


def _previous(resource: Resource) -> SearchParam | None:
    if resource.version_id <= 1:
        return None
    data = (
        ResourceVersion.objects.filter(resource_id=resource.pk, version_id=resource.version_id - 1)
        .values_list("data", flat=True)
        .first()
    )
    return _read(data)[0] if data else None


def _drop_rows(param: SearchParam) -> None:
    """Remove the index rows of a deleted parameter's code where no other parameter has it."""
    reg = registry()
    everywhere = any(b in COMMON_BASES for b in param.base)
    types = sorted(resource_types()) if everywhere else list(param.base)
    gone = [t for t in types if reg.get(t, param.code) is None]
    if not gone:
        return
    for table in indexing.TABLES:
        rows = table.objects.filter(code=param.code)
        if not (everywhere and len(gone) == len(types)):  # else: the code is gone for every type
            rows = rows.filter(resource_type__in=gone)
        rows.delete()
