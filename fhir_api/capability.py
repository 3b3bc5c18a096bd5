"""The CapabilityStatement at GET /fhir/metadata (https://hl7.org/fhir/R4/capabilitystatement.html).

Built from what the server really does: the interaction table below is the one the route
table serves, every R4 resource type is listed, and search parameters come from the
search registry. Anything partial is said so in `documentation`.
"""
from __future__ import annotations

from functools import cache
from typing import Any

from fhir_api.structure import resource_types

SOFTWARE = {"name": "Django FHIR Server", "version": "0.1.0"}

# Interactions every resource type supports through fhir_api.urls.
TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create")
SYSTEM_INTERACTIONS = ("history-system",)


def _resource_entry(resource_type: str) -> dict[str, Any]:
    return {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalRead": "full-support",
    }


@cache
def _rest(base: str) -> dict[str, Any]:
    return {
        "mode": "server",
        "documentation": "FHIR R4 REST API. Validation on write against the R4 definitions.",
        "resource": [_resource_entry(t) for t in sorted(resource_types())],
        "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
    }


def capability_statement(base: str, mode: str = "full") -> dict[str, Any]:
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "Django FHIR Server project",
        "kind": "instance",
        "software": SOFTWARE,
        "implementation": {"description": "Django FHIR Server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
    }
    if mode == "normative" or mode == "terminology":
        return statement
    statement["rest"] = [_rest(base)]
    return statement
