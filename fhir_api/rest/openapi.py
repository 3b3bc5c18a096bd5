"""GET /fhir/openapi.json: an OpenAPI 3.1 document generated from the CapabilityStatement.

Every resource type, interaction, search parameter and operation the statement lists (the
statement is itself generated from what the server does: capability.py) becomes a path and
method here, so the two documents cannot disagree. Operations take their levels (system,
type, instance) and methods (GET unless they change state) from the operation registry.

Bodies are described as FHIR resources of the right `resourceType` (the R4 definitions are
the full authority; the server validates against them and answers 422 with the path of each
problem). Every answer the server may give is declared: the success statuses of each
interaction, `4XX` (always an OperationOutcome) and 503 (database unavailable).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from django.conf import settings

from fhir_api.rest import operations
from fhir_api.rest.capability import SOFTWARE, capability_statement

FHIR_JSON = "application/fhir+json"
# What the server answers in: FHIR JSON/XML, or plain JSON/XML when the client asked for those.
ANSWER_TYPES = (FHIR_JSON, "application/json", "application/fhir+xml", "application/xml")
BODY_TYPES = (FHIR_JSON, "application/json", "application/fhir+xml", "application/xml")
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
SEARCH_TYPES = {"number": "number", "date": "date", "string": "string", "token": "token", "reference": "reference",
                "composite": "composite", "quantity": "quantity", "uri": "uri", "special": "special"}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _content(schema: dict[str, Any], types: tuple[str, ...] = ANSWER_TYPES) -> dict[str, Any]:
    return {media: {"schema": schema} for media in types}


def _resource_schema(resource_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"A FHIR R4 {resource_type} (https://hl7.org/fhir/R4/{resource_type.lower()}.html)",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": resource_type},
                       "id": {"type": "string", "pattern": ID_PATTERN}},
        "additionalProperties": True,
    }


def _answer(description: str, schema: dict[str, Any] | None, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = _content(schema)
    if headers:
        answer["headers"] = headers
    return answer


def _responses(success: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {**success, "4XX": _ref("responses", "Error"), "503": _ref("responses", "Unavailable")}


_ETAG = {"ETag": {"description": 'The version: W/"<versionId>"', "schema": {"type": "string"}}}
_LOCATION = {"Location": {"description": "The new version's URL", "required": True, "schema": {"type": "string"}}}


def _components(resource_types: list[str]) -> dict[str, Any]:
    schemas = {t: _resource_schema(t) for t in resource_types}
    schemas["OperationOutcome"] = {
        **_resource_schema("OperationOutcome"),
        "required": ["resourceType", "issue"],
        "properties": {"resourceType": {"const": "OperationOutcome"},
                       "id": {"type": "string", "description": "The request's X-Request-ID"},
                       "issue": {"type": "array", "minItems": 1, "items": {
                           "type": "object", "required": ["severity", "code"],
                           "properties": {"severity": {"enum": ["fatal", "error", "warning", "information"]},
                                          "code": {"type": "string"}, "diagnostics": {"type": "string"}}}}},
    }
    schemas["Bundle"] = {
        **_resource_schema("Bundle"),
        "required": ["resourceType", "type"],
        "properties": {"resourceType": {"const": "Bundle"},
                       "type": {"enum": ["searchset", "history", "batch-response", "transaction-response"]},
                       "total": {"type": "integer", "minimum": 0},
                       "link": {"type": "array", "items": {"type": "object"}},
                       "entry": {"type": "array", "items": {"type": "object"}}},
    }
    schemas["RequestBundle"] = {
        **_resource_schema("Bundle"),
        "required": ["resourceType", "type"],
        "properties": {"resourceType": {"const": "Bundle"}, "type": {"enum": ["batch", "transaction"]},
                       "entry": {"type": "array", "items": {"type": "object"}}},
    }
    schemas["JsonPatch"] = {
        "type": "array", "description": "RFC 6902 JSON Patch",
        "items": {"type": "object", "required": ["op", "path"],
                  "properties": {"op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                                 "path": {"type": "string"}, "from": {"type": "string"}, "value": {}}},
    }
    parameters = {
        "id": {"name": "id", "in": "path", "required": True, "description": "The resource's logical id",
               "schema": {"type": "string", "pattern": ID_PATTERN}},
        "vid": {"name": "vid", "in": "path", "required": True, "description": "A version id",
                "schema": {"type": "string", "pattern": ID_PATTERN}},
        "_format": {"name": "_format", "in": "query", "description": "Answer format, overriding Accept",
                    "schema": {"enum": ["json", "xml", *ANSWER_TYPES]}},
        "_pretty": {"name": "_pretty", "in": "query", "schema": {"type": "boolean"}},
        "_summary": {"name": "_summary", "in": "query", "schema": {"enum": ["true", "false", "text", "data", "count"]}},
        "_elements": {"name": "_elements", "in": "query", "description": "Comma-separated element names",
                      "schema": {"type": "string"}},
        "_count": {"name": "_count", "in": "query", "description": f"Page size (at most {settings.FHIR_MAX_COUNT})",
                   "schema": {"type": "integer", "minimum": 0}},
        "_since": {"name": "_since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        "_at": {"name": "_at", "in": "query", "schema": {"type": "string"}},
        "If-Match": {"name": "If-Match", "in": "header", "description": 'Version-aware update: W/"<versionId>"',
                     "schema": {"type": "string"}},
        "If-None-Exist": {"name": "If-None-Exist", "in": "header",
                          "description": "Conditional create: search criteria (e.g. identifier=sys|1)",
                          "schema": {"type": "string"}},
        "Prefer": {"name": "Prefer", "in": "header", "schema": {"type": "string"},
                   "description": "return=minimal|representation|OperationOutcome; handling=strict|lenient"},
    }
    responses = {
        "Error": _answer("A client error, as an OperationOutcome", _ref("schemas", "OperationOutcome")),
        "Unavailable": _answer("The database is unavailable; retry after Retry-After seconds",
                               _ref("schemas", "OperationOutcome")),
    }
    return {"schemas": schemas, "parameters": parameters, "responses": responses,
            "securitySchemes": {"smart": {"type": "http", "scheme": "bearer",
                                          "description": "A SMART on FHIR access token from this server's "
                                                         "authorization server (see /fhir/.well-known/"
                                                         "smart-configuration)"}}}


def _params(*names: str) -> list[dict[str, str]]:
    return [_ref("parameters", name) for name in names]


def _search_params(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        if entry["name"].startswith("_") and entry["name"] in ("_format", "_pretty", "_summary", "_elements", "_count"):
            continue
        out.append({"name": entry["name"], "in": "query",
                    "description": f"{entry['type']} search parameter. {entry.get('documentation', '')}".strip(),
                    "schema": {"type": "string"}})
    return out


def _operation_paths(resource_type: str | None, names: list[str], paths: dict[str, Any]) -> None:
    for name in sorted(set(names)):
        for level in ("system", "type", "instance"):
            if (level == "system") != (resource_type is None):
                continue
            try:
                op = operations.find(name, level, resource_type)
            except Exception:  # noqa: BLE001 -- not at this level
                continue
            prefix = {"system": "", "type": f"/{resource_type}", "instance": f"/{resource_type}/{{id}}"}[level]
            methods = ("post",) if op.affects_state else ("get", "post")
            tag = resource_type or "System"
            entry: dict[str, Any] = {}
            for method in methods:
                # A Parameters resource, or for some operations ($validate) the resource itself.
                body = {"requestBody": {"required": False, "content": _content({"type": "object"}, BODY_TYPES)}
                        } if method == "post" else {}
                entry[method] = {
                    "tags": [tag],
                    "summary": f"${name} at the {level} level",
                    "description": f"Operation ${name} ({op.definition or 'this server'})",
                    "operationId": f"{method}-{name}-{level}{'-' + resource_type if resource_type else ''}",
                    "parameters": _params("_format", "_pretty") + (_params("id") if level == "instance" else []),
                    **body,
                    "responses": _responses(
                        {"202": {"description": "Started as a job: poll the status URL in Content-Location",
                                 "headers": {"Content-Location": {"schema": {"type": "string"}}}}}
                        if op.asynchronous else {"200": _answer("The operation's result", {"type": "object"})}),
                }
            paths[f"{prefix}/${name}"] = entry


def _type_paths(entry: dict[str, Any], paths: dict[str, Any]) -> None:
    t = entry["type"]
    codes = {i["code"] for i in entry["interaction"]}
    resource = _ref("schemas", t)
    bundle = _ref("schemas", "Bundle")
    body = {"required": True, "content": _content(resource, BODY_TYPES)}
    search = _search_params(entry.get("searchParam", []))
    search_common = _params("_format", "_pretty", "_summary", "_elements", "_count")
    type_path: dict[str, Any] = {}
    if "search-type" in codes:
        type_path["get"] = {"tags": [t], "summary": f"Search {t}", "operationId": f"search-type-{t}",
                            "parameters": search_common + search,
                            "responses": _responses({"200": _answer("A searchset Bundle", bundle)})}
        paths[f"/{t}/_search"] = {"post": {
            "tags": [t], "summary": f"Search {t} (form-encoded POST)", "operationId": f"search-type-post-{t}",
            "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "properties": {p["name"]: {"type": "string"} for p in search}}}}},
            "responses": _responses({"200": _answer("A searchset Bundle", bundle)})}}
    if "create" in codes:
        type_path["post"] = {"tags": [t], "summary": f"Create a {t}", "operationId": f"create-{t}",
                             "parameters": _params("If-None-Exist", "Prefer", "_format", "_pretty"),
                             "requestBody": body,
                             "responses": _responses({
                                 "201": _answer("Created", resource, {**_LOCATION, **_ETAG}),
                                 "200": _answer("Conditional create: the one match", resource)})}
    paths[f"/{t}"] = type_path
    instance: dict[str, Any] = {}
    if "read" in codes:
        instance["get"] = {"tags": [t], "summary": f"Read a {t}", "operationId": f"read-{t}",
                           "parameters": _params("id", "_format", "_pretty", "_summary", "_elements"),
                           "responses": _responses({"200": _answer("The current version", resource, _ETAG),
                                                    "304": {"description": "Not modified (If-None-Match)"}})}
    if "update" in codes:
        instance["put"] = {"tags": [t], "summary": f"Update (or create) a {t}", "operationId": f"update-{t}",
                           "parameters": _params("id", "If-Match", "Prefer", "_format", "_pretty"),
                           "requestBody": body,
                           "responses": _responses({"200": _answer("Updated", resource, _ETAG),
                                                    "201": _answer("Created", resource, {**_LOCATION, **_ETAG})})}
    if "patch" in codes:
        instance["patch"] = {
            "tags": [t], "summary": f"Patch a {t}", "operationId": f"patch-{t}",
            "parameters": _params("id", "If-Match", "Prefer", "_format", "_pretty"),
            "requestBody": {"required": True, "content": {
                "application/json-patch+json": {"schema": _ref("schemas", "JsonPatch")},
                FHIR_JSON: {"schema": _ref("schemas", "Parameters")}}},
            "responses": _responses({"200": _answer("Patched", resource, _ETAG)})}
    if "delete" in codes:
        instance["delete"] = {"tags": [t], "summary": f"Delete a {t}", "operationId": f"delete-{t}",
                              "parameters": _params("id"),
                              "responses": _responses({"204": {"description": "Deleted (or was not there)"},
                                                       "200": _answer("Deleted", _ref("schemas", "OperationOutcome"))})}
    paths[f"/{t}/{{id}}"] = instance
    history = _params("_count", "_since", "_at", "_format", "_pretty")
    if "history-instance" in codes:
        paths[f"/{t}/{{id}}/_history"] = {"get": {
            "tags": [t], "summary": f"History of one {t}", "operationId": f"history-instance-{t}",
            "parameters": _params("id") + history, "responses": _responses({"200": _answer("A history Bundle", bundle)})}}
    if "vread" in codes:
        paths[f"/{t}/{{id}}/_history/{{vid}}"] = {"get": {
            "tags": [t], "summary": f"Read one version of a {t}", "operationId": f"vread-{t}",
            "parameters": _params("id", "vid", "_format", "_pretty", "_summary", "_elements"),
            "responses": _responses({"200": _answer("That version", resource, _ETAG)})}}
    if "history-type" in codes:
        paths[f"/{t}/_history"] = {"get": {
            "tags": [t], "summary": f"History of every {t}", "operationId": f"history-type-{t}",
            "parameters": history, "responses": _responses({"200": _answer("A history Bundle", bundle)})}}
    _operation_paths(t, [op["name"] for op in entry.get("operation", [])], paths)


def _system_paths(rest: dict[str, Any], paths: dict[str, Any]) -> None:
    codes = {i["code"] for i in rest.get("interaction", [])}
    bundle = _ref("schemas", "Bundle")
    paths["/metadata"] = {"get": {
        "tags": ["System"], "summary": "The CapabilityStatement", "operationId": "capabilities", "security": [],
        "parameters": _params("_format", "_pretty") + [
            {"name": "mode", "in": "query", "schema": {"enum": ["full", "normative", "terminology"]}}],
        "responses": _responses({"200": _answer("The CapabilityStatement", _ref("schemas", "CapabilityStatement"))})}}
    system: dict[str, Any] = {}
    if "search-system" in codes:
        system["get"] = {"tags": ["System"], "summary": "Search every type (_type=...)", "operationId": "search-system",
                         "parameters": _params("_format", "_pretty", "_summary", "_elements", "_count") + [
                             {"name": "_type", "in": "query", "schema": {"type": "string"}}],
                         "responses": _responses({"200": _answer("A searchset Bundle", bundle)})}
    if codes & {"batch", "transaction"}:
        system["post"] = {"tags": ["System"], "summary": "Batch or transaction", "operationId": "batch-transaction",
                          "parameters": _params("Prefer", "_format", "_pretty"),
                          "requestBody": {"required": True, "content": _content(_ref("schemas", "RequestBundle"),
                                                                                BODY_TYPES)},
                          "responses": _responses({"200": _answer("A batch-response or transaction-response "
                                                                  "Bundle", bundle)})}
    paths["/"] = system
    if "history-system" in codes:
        paths["/_history"] = {"get": {
            "tags": ["System"], "summary": "History of everything", "operationId": "history-system",
            "parameters": _params("_count", "_since", "_at", "_format", "_pretty"),
            "responses": _responses({"200": _answer("A history Bundle", bundle)})}}
    _operation_paths(None, [op["name"] for op in rest.get("operation", [])], paths)


def openapi_document(base: str) -> dict[str, Any]:
    from fhir_search.capability import generation

    return _document(base, generation(), settings.FHIR_AUTH_REQUIRED)


def openapi_bytes(base: str) -> bytes:
    """The document as JSON, serialised once per base and set of search parameters (about 3 MB)."""
    from fhir_search.capability import generation

    return _serialised(base, generation(), settings.FHIR_AUTH_REQUIRED)


@lru_cache(maxsize=4)
def _serialised(base: str, search_generation: int, auth_required: bool) -> bytes:
    return orjson.dumps(_document(base, search_generation, auth_required))


@lru_cache(maxsize=4)
def _document(base: str, search_generation: int, auth_required: bool) -> dict[str, Any]:
    statement = capability_statement(base)
    rest = statement["rest"][0]
    paths: dict[str, Any] = {}
    _system_paths(rest, paths)
    for entry in rest["resource"]:
        _type_paths(entry, paths)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{SOFTWARE['name']}: FHIR R4 ({statement['fhirVersion']}) REST API",
            "version": SOFTWARE["version"],
            "summary": "Generated from this server's CapabilityStatement (GET /metadata)",
            "description": rest["documentation"] + "\n\n" + rest["security"]["description"],
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": base}],
        "tags": [{"name": "System"}] + [{"name": e["type"]} for e in rest["resource"]],
        "paths": paths,
        "components": _components([e["type"] for e in rest["resource"]] + ["CapabilityStatement", "Parameters"]),
    }
    if auth_required:
        document["security"] = [{"smart": []}]
    return document
