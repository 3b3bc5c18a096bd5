"""batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).

A transaction is all or nothing: one database transaction, entries processed in the
order the spec sets (DELETE, POST, PUT/PATCH, GET/HEAD), `urn:uuid:`/`urn:oid:` and other
fullUrls replaced in every reference and narrative link, conditional references resolved
to exactly one resource. A batch runs each entry on its own: one failure stops nothing.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import Resolver404, resolve

from fhir_api.rest import audit, authorization, conditional
from fhir_api.store import audit as store_audit, jsonio, patch as fhir_patch, repository
from fhir_api.store.errors import BadRequest, FhirError, NotFound, PayloadTooLarge, PreconditionFailed, TooCostly
from fhir_api.store.structure import resource_types
from fhir_api.rest.views.base import expected_version

# http.html#trules: the order a transaction's entries are processed in.
PROCESSING_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
                401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                409: "Conflict", 410: "Gone", 412: "Precondition Failed", 422: "Unprocessable Entity"}
_STRING_FIELDS = ("method", "url", "ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince")
_HREF = re.compile(r'((?:href|src)=")([^"]+)(")')


@dataclass
class Entry:
    index: int
    method: str
    url: str  # relative to the base: "Patient", "Patient/1", "Patient?identifier=x"
    full_url: str | None
    resource: Any
    request: dict[str, Any]
    resource_type: str | None = None
    logical_id: str | None = None
    query: str = ""
    # filled while processing
    target: str | None = None  # "Type/id" this entry writes
    reuse: repository.Stored | None = None  # conditional create that matched
    response: dict[str, Any] = field(default_factory=dict)
    body: Any = None  # the resource (or fragment) returned in the entry


def _status(code: int) -> str:
    return f"{code} {_STATUS_TEXT.get(code, '')}".strip()


def _parse_entry(index: int, raw: Any, base: str) -> Entry:
    if not isinstance(raw, dict):
        raise BadRequest(f"Bundle.entry[{index}] is not an object")
    request = raw.get("request")
    if not isinstance(request, dict) or "method" not in request or "url" not in request:
        raise BadRequest(f"Bundle.entry[{index}].request needs a method and a url", code="required")
    # R4 types these as strings (uri, code, instant): anything else is a 400 here, not a
    # crash wherever the value is used later.
    for key in _STRING_FIELDS:
        if key in request and not isinstance(request[key], str):
            raise BadRequest(f"Bundle.entry[{index}].request.{key} must be a string", code="structure")
    if "fullUrl" in raw and not isinstance(raw["fullUrl"], str):
        raise BadRequest(f"Bundle.entry[{index}].fullUrl must be a string", code="structure")
    method = request["method"].upper()
    if method not in PROCESSING_ORDER:
        raise BadRequest(f"Bundle.entry[{index}].request.method {method} is not supported")
    url = request["url"]
    if url.startswith(base + "/"):
        url = url[len(base) + 1:]
    url = url.lstrip("/")
    path, _, query = url.partition("?")
    parts = path.split("/") if path else []
    entry = Entry(index, method, url, raw.get("fullUrl"), raw.get("resource"), request, query=query)
    if parts and parts[0] in resource_types():
        entry.resource_type = parts[0]
        if len(parts) > 1 and not parts[1].startswith(("_", "$")):
            entry.logical_id = parts[1]
    if method in ("POST", "PUT", "PATCH", "DELETE") and entry.resource_type is None:
        raise BadRequest(f"Bundle.entry[{index}].request.url {url!r} does not name a resource type")
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        store_audit.refuse_write(entry.resource_type)
    if method in ("POST", "PUT") and not isinstance(entry.resource, dict):
        raise BadRequest(f"Bundle.entry[{index}] ({method}) needs a resource", code="required")
    return entry


def _entry_error(entry: Entry, error: FhirError) -> FhirError:
    """The same error, saying which entry failed."""
    where = f"Bundle.entry[{entry.index}] ({entry.method} {entry.url})"
    error.diagnostics = f"{where}: {error.diagnostics}"
    if error.issues:
        for issue in error.issues:
            issue["diagnostics"] = f"{where}: {issue.get('diagnostics', '')}"
    return error


# -- reference rewriting -------------------------------------------------------------


def _rewrite(value: Any, ids: dict[str, str], resolve_conditional) -> Any:
    """Replace placeholder and conditional references everywhere in a resource (in place)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                value[key] = _new_reference(item, ids, resolve_conditional)
            elif key == "div" and isinstance(item, str) and ids:
                value[key] = _HREF.sub(lambda m: m.group(1) + ids.get(m.group(2), m.group(2)) + m.group(3), item)
            else:
                _rewrite(item, ids, resolve_conditional)
    elif isinstance(value, list):
        for item in value:
            _rewrite(item, ids, resolve_conditional)
    return value


def _new_reference(reference: str, ids: dict[str, str], resolve_conditional) -> str:
    if reference in ids:
        return ids[reference]
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        raise BadRequest(f"Reference {reference!r} matches no fullUrl in the transaction")
    type_part, question, query = reference.partition("?")
    if question and type_part in resource_types():
        return resolve_conditional(type_part, query)
    return reference


def _resolve_conditional_reference(resource_type: str, query: str) -> str:
    """A conditional reference outside a transaction (batch): exactly one stored match."""
    found = conditional.matches(resource_type, conditional.parse_criteria(query))
    if len(found) != 1:
        raise PreconditionFailed(
            f"Conditional reference {resource_type}?{query} matched {len(found)} resources (exactly one needed)"
        )
    return f"{resource_type}/{found[0]}"


class _TransactionReferences:
    """Resolves conditional references in a transaction, once per distinct criteria.

    A match may be stored already or be created by this very transaction (Synthea's
    bundles POST a Practitioner with ifNoneExist and refer to it by identifier in the same
    bundle), so the bundle's own new resources are matched too, in memory, on token
    parameters (identifier=system|value and the like).
    """

    def __init__(self, entries: list[Entry], stored: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.entries = entries
        self.cache: dict[tuple[str, str], str] = {}
        # Stored matches the transaction already searched for (its ifNoneExist criteria, under
        # their lock): Synthea refers to each pooled Practitioner by the very criteria its
        # entry's ifNoneExist names, and a search is a seventh of a bundle's CPU (issue 14).
        self.stored = stored or {}

    def __call__(self, resource_type: str, query: str) -> str:
        key = (resource_type, query)
        if key not in self.cache:
            params = conditional.parse_criteria(query)
            stored = self.stored.get(_criteria_key(resource_type, params))
            if stored is None:
                stored = conditional.matches(resource_type, params)
            found = {f"{resource_type}/{i}" for i in stored}
            found |= self._in_bundle(resource_type, params)
            if len(found) != 1:
                raise PreconditionFailed(
                    f"Conditional reference {resource_type}?{query} matched {len(found)} resources "
                    "(exactly one needed)"
                )
            self.cache[key] = found.pop()
        return self.cache[key]

    def _in_bundle(self, resource_type: str, params: list[tuple[str, str]]) -> set[str]:
        from fhir_search.memory import matches_in_memory

        return {
            e.target for e in self.entries
            if e.method in ("POST", "PUT") and e.reuse is None and e.target and e.resource_type == resource_type
            and isinstance(e.resource, dict) and matches_in_memory(resource_type, e.resource, params)
        }


# -- processing ----------------------------------------------------------------------


def process(request: HttpRequest, bundle: Any, base: str) -> dict[str, Any]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base needs a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        told = "is missing" if kind is None else f"is {jsonio.dumps(kind).decode()[:40]}"
        raise BadRequest(f"Bundle.type must be batch or transaction; it {told}")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be a list")
    if len(raw_entries) > settings.FHIR_MAX_BUNDLE_ENTRIES:
        raise PayloadTooLarge(f"The Bundle has {len(raw_entries)} entries; this server takes at most "
                              f"{settings.FHIR_MAX_BUNDLE_ENTRIES} (FHIR_MAX_BUNDLE_ENTRIES)")
    minimal = _prefer_return(request) == "minimal"
    request.audit_bundle_type = kind  # the audit record's subtype (fhir_api.rest.audit)
    if kind == "transaction":
        entries = [_parse_entry(i, raw, base) for i, raw in enumerate(raw_entries)]
        _transaction(request, entries, base, minimal)
    else:
        entries = _batch(request, raw_entries, base)
    out_entries = []
    for entry in entries:
        out: dict[str, Any] = {}
        if entry.body is not None and not minimal:
            out["resource"] = entry.body
        out["response"] = entry.response
        out_entries.append(out)
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": out_entries}


def _body_size(body: Any) -> int:
    return len(jsonio.dumps(body))  # a stored fragment is copied as-is: cheap


class _AnswerBudget:
    """The resources a batch answer carries, counted as entries run: 300 GET entries of
    `_history?_count=1000` would otherwise build an answer of 130 MB in memory."""

    def __init__(self, minimal: bool = False) -> None:
        self.left = settings.FHIR_MAX_BUNDLE_RESPONSE_BYTES
        self.minimal = minimal  # Prefer: return=minimal: the answer carries no resources

    def spend(self, entry: Entry) -> None:
        if entry.body is None or self.minimal:
            return
        self.left -= _body_size(entry.body)
        if self.left < 0:
            raise TooCostly(
                f"The answer would be larger than this server's limit of {settings.FHIR_MAX_BUNDLE_RESPONSE_BYTES}"
                " bytes (FHIR_MAX_BUNDLE_RESPONSE_BYTES); split the Bundle or ask for smaller pages"
            )


def _spend(budget: _AnswerBudget, entry: Entry) -> None:
    try:
        budget.spend(entry)
    except FhirError as error:
        raise _entry_error(entry, error) from None


def _prefer_return(request: HttpRequest) -> str | None:
    from fhir_api.rest.views.base import prefer

    return prefer(request)


def _check_duplicates(entries: list[Entry]) -> None:
    """Two entries that would create or match the same thing are a 400 naming both.

    Conditional creates (ifNoneExist) and conditional updates with the same criteria would
    each find nothing stored yet and both create (http.html#trules: a transaction must not
    touch one resource twice); two entries with the same fullUrl are the same resource.
    """
    seen: dict[tuple[str, ...], Entry] = {}

    def once(key: tuple[str, ...], entry: Entry, what: str) -> None:
        first = seen.setdefault(key, entry)
        if first is not entry:
            raise BadRequest(
                f"Bundle.entry[{first.index}] and Bundle.entry[{entry.index}] have the same {what}: "
                "a transaction may create or change one resource only once"
            )

    for entry in entries:
        if entry.full_url:
            once(("fullUrl", entry.full_url), entry, f"fullUrl {entry.full_url}")
        criteria = entry.request.get("ifNoneExist") if entry.method == "POST" else None
        if entry.method in ("PUT", "PATCH", "DELETE") and not entry.logical_id:
            criteria = entry.query
        if criteria and entry.resource_type:
            normal = "&".join(f"{k}={v}" for k, v in sorted(conditional.parse_criteria(criteria)))
            once(("criteria", entry.resource_type, normal), entry,
                 f"conditional criteria {entry.resource_type}?{criteria}")


def _transaction(request: HttpRequest, entries: list[Entry], base: str, minimal: bool = False) -> None:
    _check_duplicates(entries)
    with transaction.atomic():
        stored: dict[tuple[str, str], list[str]] = {}
        ids = _assign_identities(entries, base, stored)
        seen: dict[str, int] = {}
        for entry in entries:
            if entry.target and entry.method != "GET" and entry.method != "HEAD":
                if entry.target in seen:
                    raise BadRequest(
                        f"Bundle.entry[{seen[entry.target]}] and Bundle.entry[{entry.index}] both write {entry.target}"
                    )
                seen[entry.target] = entry.index
        references = _TransactionReferences(entries, stored)
        for entry in entries:
            if entry.resource is not None:
                try:
                    _rewrite(entry.resource, ids, references)
                except FhirError as error:
                    raise _entry_error(entry, error) from None
        ordered = sorted(entries, key=lambda e: PROCESSING_ORDER[e.method])
        new = [e for e in ordered if e.method == "POST" and e.reuse is None]
        # Counted as entries run, so the GET entries of a huge answer stop at the limit; in this
        # atomic block, so going beyond it rolls the whole transaction back.
        budget = _AnswerBudget(minimal)
        for entry in ordered:
            if entry.method == "POST" and entry.reuse is None:
                if entry is new[0]:  # all plain creates together, at their turn in the order
                    _create_in_bulk(new)
                    for created in new:
                        _spend(budget, created)
                continue
            try:
                _execute(request, entry)
            except FhirError as error:
                raise _entry_error(entry, error) from None
            _spend(budget, entry)


def _create_in_bulk(entries: list[Entry]) -> None:
    """Validate each new resource, then insert them all with a few statements."""
    items = []
    for entry in entries:
        body = {k: v for k, v in entry.resource.items() if k != "id"}  # a create ignores the body id
        try:
            content = repository.prepare(entry.resource_type, body)
        except FhirError as error:
            raise _entry_error(entry, error) from None
        rtype, new_id = entry.target.split("/", 1)
        items.append((rtype, new_id, content))
    for entry, written in zip(entries, repository.create_many(items), strict=True):
        _written(entry, written)


def _criteria_key(resource_type: str, params: list[tuple[str, str]]) -> tuple[str, str]:
    return resource_type, "&".join(f"{k}={v}" for k, v in sorted(params))


def _assign_identities(
    entries: list[Entry], base: str, stored: dict[tuple[str, str], list[str]] | None = None
) -> dict[str, str]:
    """Decide which resource each write touches and map every fullUrl to it.

    `stored` collects what each ifNoneExist search found (criteria -> stored ids)."""
    ids: dict[str, str] = {}
    for entry in entries:
        try:
            _identify(entry, stored)
        except FhirError as error:
            raise _entry_error(entry, error) from None
        if entry.target and entry.full_url and entry.method in ("POST", "PUT", "PATCH"):
            ids[entry.full_url] = entry.target
            if not entry.full_url.startswith("urn:"):
                # an absolute fullUrl on this server: its relative form points here too
                path = urlsplit(entry.full_url).path.rstrip("/").split("/")
                if len(path) >= 2 and path[-2] in resource_types():
                    ids.setdefault(f"{path[-2]}/{path[-1]}", entry.target)
    return ids


def _identify(entry: Entry, stored: dict[tuple[str, str], list[str]] | None = None) -> None:
    rtype = entry.resource_type
    req = entry.request
    if entry.method == "POST":
        if req.get("ifNoneExist"):
            params = conditional.parse_criteria(req["ifNoneExist"])
            conditional.lock_criteria(rtype, params)
            found = conditional.matches(rtype, params)
            if stored is not None:
                stored[_criteria_key(rtype, params)] = found
            if len(found) > 1:
                raise PreconditionFailed(f"ifNoneExist matched {len(found)} resources")
            if found:
                entry.reuse = repository.read(rtype, found[0])
                entry.target = f"{rtype}/{found[0]}"
                return
        entry.target = f"{rtype}/{uuid.uuid4()}"
    elif entry.method in ("PUT", "PATCH", "DELETE"):
        if entry.logical_id:
            entry.target = f"{rtype}/{entry.logical_id}"
        elif entry.query:
            params = conditional.parse_criteria(entry.query)
            conditional.lock_criteria(rtype, params)
            found = conditional.matches(rtype, params, limit=2, interaction="d" if entry.method == "DELETE" else "u")
            if len(found) > 1:
                raise PreconditionFailed(f"The criteria matched {len(found)} resources")
            if found:
                entry.target = f"{rtype}/{found[0]}"
            elif entry.method == "PUT":
                body_id = entry.resource.get("id") if isinstance(entry.resource, dict) else None
                entry.target = f"{rtype}/{body_id or uuid.uuid4()}"
            elif entry.method == "PATCH":
                raise NotFound("No resource matches the PATCH criteria")
        else:
            raise BadRequest(f"{entry.method} needs a resource id or search criteria in the url")


def _written(entry: Entry, written: repository.Written | repository.Stored, status: int | None = None) -> None:
    stored = written.stored if isinstance(written, repository.Written) else written
    code = status or (201 if isinstance(written, repository.Written) and written.created else 200)
    entry.response = {
        "status": _status(code),
        "location": f"{stored.reference}/_history/{stored.version_id}",
        "etag": stored.etag,
        "lastModified": repository.format_instant(stored.last_updated),
    }
    entry.body = orjson.Fragment(stored.data)


def _execute(request: HttpRequest, entry: Entry) -> None:
    method, req = entry.method, entry.request
    if_match = expected_version(req.get("ifMatch"))
    if method == "POST":
        if entry.reuse is not None:
            _written(entry, entry.reuse, 200)
            return
        rtype, new_id = entry.target.split("/", 1)
        _written(entry, repository.create(entry.resource_type, entry.resource, logical_id=new_id))
    elif method == "PUT":
        rtype, logical_id = entry.target.split("/", 1)
        authorization.require(request, rtype, "u")
        content = entry.resource
        if not entry.logical_id:  # conditional update: the body takes the matched id
            content = {**content, "id": logical_id}
        _written(entry, repository.update(rtype, logical_id, content, if_match=if_match))
    elif method == "PATCH":
        rtype, logical_id = entry.target.split("/", 1)
        authorization.require(request, rtype, "u")
        _written(entry, repository.patch(rtype, logical_id, _patcher(entry), if_match=if_match))
    elif method == "DELETE":
        authorization.require(request, entry.resource_type, "d")
        if entry.target is None:  # conditional delete that matched nothing
            entry.response = {"status": _status(204)}
            return
        rtype, logical_id = entry.target.split("/", 1)
        written = repository.delete(rtype, logical_id, if_match=if_match)
        entry.response = {"status": _status(204)}
        if written is not None and written.changed:
            entry.response["etag"] = written.stored.etag
    else:
        _read_entry(request, entry)


def _patcher(entry: Entry):
    document = entry.resource
    if isinstance(document, dict) and document.get("resourceType") == "Parameters":
        return lambda current: fhir_patch.apply_fhirpath_patch(current, document)
    if isinstance(document, dict) and document.get("resourceType") == "Binary" and document.get("data"):
        import base64
        import binascii

        try:
            ops = jsonio.loads(base64.b64decode(document["data"], validate=True))
        except (TypeError, ValueError, binascii.Error):
            raise BadRequest("Binary.data of a PATCH entry must be base64 of a JSON Patch document") from None
        return lambda current: fhir_patch.apply_json_patch(current, ops)
    raise BadRequest("A PATCH entry carries a Parameters resource (FHIRPath Patch) or a Binary JSON Patch")


def _read_entry(request: HttpRequest, entry: Entry) -> None:
    """GET/HEAD entries run through the same views as plain HTTP requests."""
    inner = HttpRequest()
    inner.method = "GET"
    path, _, query = entry.url.partition("?")
    inner.path = inner.path_info = "/fhir/" + path
    inner.GET = QueryDict(query)
    inner.META = {
        "QUERY_STRING": query,  # search views read the query in order from here
        "REQUEST_METHOD": "GET",
        "HTTP_ACCEPT": "application/fhir+json",
        "SERVER_NAME": request.META.get("SERVER_NAME", "localhost"),
        "SERVER_PORT": request.META.get("SERVER_PORT", "80"),
        "HTTP_HOST": request.get_host(),
        "wsgi.url_scheme": request.scheme,
        "REMOTE_ADDR": request.META.get("REMOTE_ADDR", ""),  # for the entry's audit record
    }
    for header, key in (("ifNoneMatch", "HTTP_IF_NONE_MATCH"), ("ifModifiedSince", "HTTP_IF_MODIFIED_SINCE")):
        if entry.request.get(header):
            inner.META[key] = entry.request[header]
    for attr in ("user", "auth", "access"):
        if hasattr(request, attr):
            setattr(inner, attr, getattr(request, attr))
    try:
        match = resolve(inner.path)
    except Resolver404:
        raise NotFound(f"No FHIR interaction at {entry.url}") from None
    response: HttpResponse = match.func(inner, *match.args, **match.kwargs)
    response.render() if hasattr(response, "render") else None
    if response.status_code >= 400:
        outcome = orjson.loads(response.content) if response.content else None
        raise FhirError(
            (outcome or {}).get("issue", [{}])[0].get("diagnostics", "failed"),
            status=response.status_code,
            issues=(outcome or {}).get("issue"),
        )
    entry.response = {"status": _status(response.status_code)}
    if response.has_header("ETag"):
        entry.response["etag"] = response["ETag"]
    if response.status_code == 200 and response.content and entry.method == "GET":
        entry.body = orjson.Fragment(response.content)


def _batch(request: HttpRequest, raw_entries: list[Any], base: str) -> list[Entry]:
    """Each entry on its own savepoint: a failure becomes that entry's response."""
    results = []
    budget = _AnswerBudget(_prefer_return(request) == "minimal")
    for index, raw in enumerate(raw_entries):
        try:
            entry = _parse_entry(index, raw, base)
        except FhirError as error:
            entry = Entry(index, "GET", "", None, None, {})
            _failed(request, entry, error)
            results.append(entry)
            continue
        try:
            with transaction.atomic():
                if entry.resource is not None:
                    _rewrite(entry.resource, {}, _resolve_conditional_reference)
                _identify(entry)
                _execute(request, entry)
                budget.spend(entry)  # beyond it, this entry fails (its write is rolled back)
        except FhirError as error:
            _failed(request, entry, error)
        results.append(entry)
    return results


def _failed(request: HttpRequest, entry: Entry, error: FhirError) -> None:
    audit.entry_failed(request, entry.method, entry.url, error)
    entry.response = {"status": _status(error.status), "outcome": error.outcome()}
    entry.body = None
