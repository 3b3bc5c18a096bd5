"""The history interactions shared by the three levels (https://hl7.org/fhir/R4/http.html#history)."""
from __future__ import annotations

from urllib.parse import urlencode

import orjson
from django.http import HttpRequest, HttpResponse

from fhir_api.store import repository
from fhir_api.store.datetimes import parse_instant, parse_range
from fhir_api.store.errors import BadRequest
from fhir_api.rest import authorization
from fhir_api.rest.responses import base_url, bundle_body
from fhir_api.rest.views.base import count_param

_HISTORY_PARAMS = ("_count", "_since", "_at", "_format", "_pretty")


def history_bundle(
    request: HttpRequest, path: str, resource_type: str | None = None, logical_id: str | None = None
) -> HttpResponse:
    query = request.GET
    try:
        since = parse_instant(query["_since"]) if "_since" in query else None
        at = parse_range(query["_at"]) if "_at" in query else None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    count = count_param(request)
    page = repository.history(
        resource_type=resource_type,
        logical_id=logical_id,
        since=since,
        at=at,
        count=count,
        cursor=query.get("_cursor"),
        with_total=logical_id is not None,
        visible=authorization.visible_condition(request, (resource_type,) if resource_type else None, "r"),
    )
    base = base_url(request)
    kept = [(k, v) for k in _HISTORY_PARAMS for v in query.getlist(k)]
    self_params = kept + ([("_cursor", query["_cursor"])] if "_cursor" in query else [])
    links = [{"relation": "self", "url": _url(base, path, self_params)}]
    if page.next_cursor:
        links.append({"relation": "next", "url": _url(base, path, kept + [("_cursor", page.next_cursor)])})
    bundle: dict = {"resourceType": "Bundle", "type": "history"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    bundle["entry"] = [_entry(base, s) for s in page.entries]
    return bundle_body(request, bundle)


def _url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    url = f"{base}/{path}" if path else base
    return f"{url}?{urlencode(params)}" if params else url


def _entry(base: str, stored: repository.Stored) -> dict:
    entry: dict = {"fullUrl": f"{base}/{stored.reference}"}
    if not stored.deleted:
        entry["resource"] = orjson.Fragment(stored.data)
    method = stored.method or "PUT"
    url = stored.resource_type if method == "POST" else stored.reference
    entry["request"] = {"method": method, "url": url}
    if method == "DELETE":
        status = "204 No Content"
    else:
        status = "201 Created" if stored.created or method == "POST" else "200 OK"
    entry["response"] = {
        "status": status,
        "etag": stored.etag,
        "lastModified": repository.format_instant(stored.last_updated),
    }
    return entry
