"""What the CapabilityStatement says about search (https://hl7.org/fhir/R4/capabilitystatement.html).

`rest.resource.searchParam`, `searchInclude` and `searchRevInclude` for each type, from the
same registry the index and the query builder use (SearchParameters stored on the server
included), minus what is not supported.
"""
from __future__ import annotations

from functools import cache

from fhir_api.store.structure import resource_types
from fhir_search.params import param_type
from fhir_search.params.special import NotSupported
from fhir_search.registry import registry


def _supported(param) -> bool:
    ptype = param_type(param)
    return ptype is not None and not isinstance(ptype, NotSupported)


def generation() -> int:
    """Changes whenever the searchable parameters change (callers key their caches on it).

    Loads the stored SearchParameters first, so the statement lists them.
    """
    from fhir_search import stored_params

    stored_params.ensure_current()
    return registry().generation


# The caches below are keyed on the registry's generation, so a changed SearchParameter
# makes new entries without stored_params having to reach up here to clear them.
@cache
def _entries(resource_type: str, generation: int) -> tuple[dict, ...]:
    out = []
    for code, param in sorted(registry().for_type(resource_type).items()):
        if not _supported(param):
            continue
        entry = {"name": code, "type": param.type}
        if param.url:
            entry["definition"] = param.url
        if param.description:
            entry["documentation"] = param.description
        out.append(entry)
    return tuple(out)


def search_param_entries(resource_type: str) -> list[dict]:
    """CapabilityStatement.rest.resource.searchParam for one type."""
    return [dict(e) for e in _entries(resource_type, registry().generation)]


def search_includes(resource_type: str) -> list[str]:
    """CapabilityStatement.rest.resource.searchInclude: `Type:param` for its reference parameters."""
    params = registry().for_type(resource_type)
    return ["*"] + [f"{resource_type}:{code}" for code, p in sorted(params.items()) if p.type == "reference"]


@cache
def _revincludes(generation: int) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    everything = sorted(resource_types())
    for source in everything:
        for code, p in sorted(registry().for_type(source).items()):
            if p.type != "reference":
                continue
            for target in p.targets or everything:
                out.setdefault(target, []).append(f"{source}:{code}")
    return {k: tuple(v) for k, v in out.items()}


def search_revincludes(resource_type: str) -> list[str]:
    """CapabilityStatement.rest.resource.searchRevInclude: `*` and each `Source:param` that can point here."""
    return ["*", *_revincludes(registry().generation).get(resource_type, ())]
