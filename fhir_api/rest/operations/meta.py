"""`$meta`, `$meta-add` and `$meta-delete`: the profiles, tags and security labels of resources.

https://hl7.org/fhir/R4/resource-operation-meta.html,
https://hl7.org/fhir/R4/resource-operation-meta-add.html and
https://hl7.org/fhir/R4/resource-operation-meta-delete.html

`$meta` (GET or POST) at the system and type levels answers the union of the tags, security
labels and profiles in use by current resources (of that type), read from the search index
(`_tag`, `_security`, `_profile` rows; deleted resources have none) with one DISTINCT query
each, so without `display` and `version` (the index keeps system and code). At the instance
level it answers the current version's meta, versionId and lastUpdated included.

`$meta-add` / `$meta-delete` (POST, instance) take a `meta` (valueMeta) and add or remove its
tags and security labels (identity system+code; version and display ignored) and profiles
(identity the whole URL); everything else in the resource, and in its meta, stays as it was.

Versions: the DSTU2/STU3 definitions said these operations do not create a new version; the R4
definitions dropped that note, and R4's Meta.tag/Meta.security only say labels *can* be updated
without changing the version. Here they make a new version, through `repository.patch` (row
lock, If-Match, version row, index rows, all in one transaction), because versions are
immutable in this store: a vread of version 3 always returns the same bytes, an ETag always
names one content, and history shows when a security label was added and by which write.
Rewriting the current version in place would make caches and If-Match blind to a changed
security label. A request that changes nothing writes nothing and answers the current meta.
"""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse

from fhir_api.store import repository
from fhir_api.store.errors import BadRequest, FhirError
from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import render
from fhir_api.rest.views.base import if_match
from fhir_search.models import TokenIndex, UriIndex

# A summary longer than this is no help to anyone choosing a tag to search by, and reading it
# would hold the whole index in memory: refuse it (the spec allows a 4xx at these levels).
MAX_IN_USE = 1000

_LISTS = ("profile", "security", "tag")


def _parameters(meta: dict[str, Any]) -> dict[str, Any]:
    if not meta:  # a Meta with nothing in it would be an empty element (json.html)
        return {"resourceType": "Parameters"}
    return {"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]}


def _distinct(qs: QuerySet, *fields: str) -> list[tuple]:
    rows = list(qs.values_list(*fields).distinct().order_by(*fields)[: MAX_IN_USE + 1])
    if len(rows) > MAX_IN_USE:
        raise FhirError(f"More than {MAX_IN_USE} distinct values are in use; search by _tag, _security or "
                        "_profile instead", code="too-costly", status=422)
    return rows


def _in_use(resource_type: str | None) -> dict[str, Any]:
    """The union of profiles, security labels and tags of current resources (of one type)."""
    def rows(model: type, code: str) -> QuerySet:
        qs = model.objects.filter(code=code)
        return qs.filter(resource_type=resource_type) if resource_type is not None else qs

    def codings(code: str) -> list[dict[str, str]]:
        out = []
        for system, value in _distinct(rows(TokenIndex, code), "system", "value"):
            coding = {"system": system, "code": value}
            out.append({k: v for k, v in coding.items() if v is not None})
        return out

    meta: dict[str, Any] = {
        "profile": [value for (value,) in _distinct(rows(UriIndex, "_profile"), "value")],
        "security": codings("_security"),
        "tag": codings("_tag"),
    }
    return {k: v for k, v in meta.items() if v}


@operation("meta", levels=("system", "type", "instance"), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/Resource-meta")
def meta(invocation: Invocation) -> HttpResponse:
    if invocation.level == "instance":
        assert invocation.resource_type is not None and invocation.logical_id is not None
        stored = repository.read(invocation.resource_type, invocation.logical_id)  # 404, 410
        return render(invocation.request, _parameters(stored.content.get("meta", {})))
    return render(invocation.request, _parameters(_in_use(invocation.resource_type)))


# -- changing meta ---------------------------------------------------------------------------


def _input_meta(invocation: Invocation, name: str) -> dict[str, Any]:
    values = invocation.values("meta")
    if len(values) != 1 or not isinstance(values[0], dict):
        raise BadRequest(f"${name} takes one 'meta' parameter (valueMeta)")
    given = values[0]
    for key in _LISTS:
        if key in given and not isinstance(given[key], list):
            raise BadRequest(f"meta.{key} must be an array")
    return given


def _identity(key: str, item: Any) -> Any:
    """Profiles are the same by URL, codings by system and code (version, display ignored)."""
    if key == "profile":
        return item
    if not isinstance(item, dict):
        raise BadRequest(f"meta.{key} holds Codings")
    return item.get("system"), item.get("code")


def added(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`current` meta with the profiles, tags and security labels of `given` added (as sets)."""
    out = dict(current)
    for key in _LISTS:
        items = list(current.get(key, []))
        seen = {_identity(key, i) for i in items}
        for item in given.get(key, []):
            identity = _identity(key, item)
            if identity not in seen:
                seen.add(identity)
                items.append(item)
        if items:
            out[key] = items
    return out


def removed(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`current` meta without the profiles, tags and security labels of `given`."""
    out = dict(current)
    for key in _LISTS:
        gone = {_identity(key, i) for i in given.get(key, [])}
        items = [i for i in current.get(key, []) if _identity(key, i) not in gone]
        if items:
            out[key] = items
        else:
            out.pop(key, None)  # no empty arrays in FHIR JSON
    return out


class _Unchanged(Exception):
    """Raised inside the patch transaction when the meta would not change: nothing is written."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta


def _change(invocation: Invocation, name: str, change: Any) -> HttpResponse:
    rtype, logical_id = invocation.resource_type, invocation.logical_id
    assert rtype is not None and logical_id is not None
    given = _input_meta(invocation, name)

    def apply(content: dict[str, Any]) -> dict[str, Any]:
        before = content.get("meta", {})
        after = change(before, given)
        if after == before:
            raise _Unchanged(before)
        return {**content, "meta": after}

    try:
        written = repository.patch(rtype, logical_id, apply, if_match=if_match(invocation.request))
    except _Unchanged as same:
        return render(invocation.request, _parameters(same.meta))
    return render(invocation.request, _parameters(written.stored.content["meta"]))


@operation("meta-add", levels=("instance",), affects_state=True, permission="u",
           definition="http://hl7.org/fhir/OperationDefinition/Resource-meta-add")
def meta_add(invocation: Invocation) -> HttpResponse:
    return _change(invocation, "meta-add", added)


@operation("meta-delete", levels=("instance",), affects_state=True, permission="u",
           definition="http://hl7.org/fhir/OperationDefinition/Resource-meta-delete")
def meta_delete(invocation: Invocation) -> HttpResponse:
    return _change(invocation, "meta-delete", removed)
