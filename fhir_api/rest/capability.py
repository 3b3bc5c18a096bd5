"""The CapabilityStatement at GET /fhir/metadata (https://hl7.org/fhir/R4/capabilitystatement.html).

Built from what the server really does: the interaction table below is the one the route
table serves, every R4 resource type is listed with the search parameters the search
registry supports, and anything partial is said so in `documentation`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings

from fhir_api.rest import operations
from fhir_api.store.structure import resource_types
from smart_auth.endpoints import endpoints

SOFTWARE = {"name": "Django FHIR Server", "version": "0.1.0", "releaseDate": "2026-11-25"}

# Interactions every resource type supports through fhir_api.rest.urls.
TYPE_INTERACTIONS = (
    "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")

# Search result parameters (search.html#return) the engine implements for every type.
COMMON_SEARCH_PARAMS = ("_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total", "_has")

PARTIAL = (
    "SMART patient/ scopes reach the R4 Patient compartment and read the shared types of "
    "SMART_PATIENT_SHARED_TYPES (Practitioner, Organization, Medication, ...). Not yet supported: "
    "validation of FHIRPath invariants, terminology bindings and meta.profile; "
    "operations not listed in `operation`; search parameters and modifiers that are "
    "not listed per resource (e.g. _query, near, :above/:below on references); terminology "
    "modifiers (:in, :not-in, :above, :below on tokens) know the value sets and code systems "
    "of the R4 specification and those stored on this server only. Bulk Data $export "
    "(system, Patient, Group): includeAssociatedData, _until and reporting deleted resources "
    "are not supported (warnings, or errors under Prefer: handling=strict); a resource changed "
    "after transactionTime is exported as it was then, if its current version matches the filters."
)


def _resource_entry(resource_type: str) -> dict[str, Any]:
    from fhir_search.capability import search_includes, search_param_entries, search_revincludes

    return {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "multiple",
        "searchInclude": search_includes(resource_type),
        "searchRevInclude": search_revincludes(resource_type),
        "searchParam": search_param_entries(resource_type),
        "operation": [
            _operation_entry(op) for op in operations.all_operations()
            if op.levels & {"type", "instance"} and (op.types is None or resource_type in op.types)
        ],
    }


def _operation_entry(op: operations.Operation) -> dict[str, Any]:
    definition = op.definition or f"http://hl7.org/fhir/OperationDefinition/{op.name}"
    return {"name": op.name, "definition": definition}


@lru_cache(maxsize=1)
def _rest(search_generation: int) -> dict[str, Any]:
    """The `rest` entry; rebuilt when the searchable parameters change (stored SearchParameters)."""
    return {
        "mode": "server",
        "documentation": "FHIR R4 REST API; every write is validated against the R4 definitions. " + PARTIAL,
        "resource": [_resource_entry(t) for t in sorted(resource_types())],
        "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
        "operation": [_operation_entry(op) for op in operations.all_operations() if "system" in op.levels],
        "searchParam": [
            {"name": name, "type": "special" if name in ("_has",) else "token",
             "documentation": "Search result parameter, see https://hl7.org/fhir/R4/search.html"}
            for name in COMMON_SEARCH_PARAMS
        ],
    }


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _security(base: str) -> dict[str, Any]:
    """rest.security: SMART on FHIR (https://hl7.org/fhir/smart-app-launch/conformance.html)
    with the same endpoints as /.well-known/smart-configuration, in R4 element order."""
    urls = endpoints(base)
    if settings.FHIR_AUTH_REQUIRED:
        description = ("Every interaction except metadata and the SMART discovery document requires "
                       "an OAuth 2.0 bearer token from this server's SMART App Launch authorization "
                       f"server (discovery: {base}/.well-known/smart-configuration).")
    else:
        description = ("Authentication is off on this server (FHIR_AUTH_REQUIRED=false): no token is "
                       "required. Its SMART App Launch authorization server still issues tokens "
                       f"(discovery: {base}/.well-known/smart-configuration).")
    return {
        "extension": [{
            "url": OAUTH_URIS,
            "extension": [
                {"url": name, "valueUri": urls[name]}  # type: ignore[literal-required]
                for name in ("authorize", "token", "introspect", "revoke", "manage")
            ],
        }],
        "cors": True,
        "service": [{
            "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
            "text": "OAuth2 using SMART-on-FHIR profile (see https://hl7.org/fhir/smart-app-launch/)",
        }],
        "description": description,
    }


def capability_statement(base: str, mode: str = "full") -> dict[str, Any]:
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": SOFTWARE["releaseDate"],
        "publisher": "Django FHIR Server project",
        "kind": "instance",
        "software": {"name": SOFTWARE["name"], "version": SOFTWARE["version"]},
        "implementation": {"description": "Django FHIR Server", "url": base},
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
    }
    if mode in ("normative", "terminology"):
        return statement
    from fhir_search.capability import generation

    rest = _rest(generation())
    # security depends on the base URL and settings, so it joins the cached entry per call
    # (a new dict: the cached one is shared) in its R4 place after documentation.
    statement["rest"] = [{"mode": rest["mode"], "documentation": rest["documentation"],
                          "security": _security(base), **rest}]
    return statement
