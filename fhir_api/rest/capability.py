"""The CapabilityStatement at GET /fhir/metadata (https://hl7.org/fhir/R4/capabilitystatement.html).

Built from what the server really does: the interaction table below is the one the route
table serves, every R4 resource type is listed with the search parameters the search
registry supports, and anything partial is said so in `documentation`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings

from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
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
    "SMART_PATIENT_SHARED_TYPES (Practitioner, Organization, Medication, ...). Validation: FHIRPath "
    "invariants only at FHIR_VALIDATION_LEVEL=full and in $validate; bindings to value sets whose "
    "codes the server cannot list (SNOMED CT, LOINC, MIME types, languages) are not checked; "
    "profile slicing: discriminators value and pattern through resolve() and profile "
    "discriminators naming profiles not held here are not checked, nor whether a reference's "
    "target conforms to a targetProfile (its type is checked); canonical targetProfiles are not "
    "checked. Not yet supported: "
    "operations not listed in `operation`; search parameters and modifiers that are "
    "not listed per resource (e.g. _query, near, :above/:below on references); terminology "
    "(:in, :not-in, :above, :below and the terminology operations) knows the value sets and code "
    "systems of the R4 specification and those stored on this server only (no external "
    "terminology server). Bulk Data $export "
    "(system, Patient, Group): includeAssociatedData and _until (Bulk Data 3.0.0) are not "
    "supported (warnings, or errors under Prefer: handling=strict); the deleted resources of a "
    "_since export are listed except for types with a _typeFilter, types the token reaches only in "
    "part, and types Consents govern while any Consent is in force (a warning says so); a resource "
    "changed after transactionTime is exported as it was then, if its current version matches the "
    "filters; export files are always served by this server (no presigned object-storage URLs)."
)


def _audit_entry() -> dict[str, Any]:
    """The audit trail: read and searched, written by the server only (IHE BALP, append-only)."""
    from fhir_search.capability import search_param_entries

    return {
        "type": AUDIT_TYPE,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{AUDIT_TYPE}",
        "supportedProfile": [f"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.{name}"
                             for name in ("PatientRead", "PatientQuery", "PatientCreate", "PatientUpdate",
                                          "PatientDelete", "Read", "Query", "Create", "Update", "Delete")],
        "documentation": ("The audit trail (IHE BALP): an AuditEvent per interaction, authorization step and "
                          "admin change, recorded by this server; append-only (create, update, patch and "
                          "delete answer 405). Reading it is not audited itself."),
        "interaction": [{"code": code} for code in ("read", "vread", "history-instance", "history-type",
                                                    "search-type")],
        "versioning": "versioned",
        "readHistory": True,
        "searchParam": search_param_entries(AUDIT_TYPE),
    }


def _resource_entry(resource_type: str) -> dict[str, Any]:
    from fhir_search.capability import search_includes, search_param_entries, search_revincludes

    if resource_type == AUDIT_TYPE:
        return _audit_entry()
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


# What rest.security.description says about patient consent (README: Consent).
CONSENT = (
    "Patient consent is enforced in the same queries as the scopes: active Consent resources with "
    "scope patient-privacy permit or deny access to their patient's data (the Patient and its "
    "compartment), with nested exceptions, by actor (the user's fhirUser, the app as its Device "
    "with identifier system urn:ietf:params:oauth:client-id, an Organization), action, purpose "
    "(against the token's purpose of use), class, code, securityLabel (meta.security), data, "
    "period and dataPeriod. Denied data is absent from reads (404), searches, totals, includes, "
    "chains, _has, history and $everything; denied writes are refused (403). Where no Consent "
    "applies the server's default is {default}. ETREAT (break the glass) overrides denials that do "
    "not name it, for clients registered for it. Partial: an Organization actor matches through "
    "PractitionerRole.organization and Device.owner only; Consent.policy, verification and "
    "provision.actor.role are not evaluated."
)


def _security(base: str) -> dict[str, Any]:
    """rest.security: SMART on FHIR (https://hl7.org/fhir/smart-app-launch/conformance.html)
    with the same endpoints as /.well-known/smart-configuration, in R4 element order."""
    urls = endpoints(base)
    if settings.FHIR_AUTH_REQUIRED:
        description = ("Every interaction except metadata and the SMART discovery document requires "
                       "an OAuth 2.0 bearer token from this server's SMART App Launch authorization "
                       f"server (discovery: {base}/.well-known/smart-configuration). "
                       + CONSENT.format(default=settings.FHIR_CONSENT_DEFAULT))
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
