"""Which FHIR interaction a request is, from its route (fhir_api.rest.urls) and method.

For metrics and request logs: labels are the interaction codes of the CapabilityStatement
(https://hl7.org/fhir/R4/valueset-type-restful-interaction.html) plus `$name` for a
registered operation. Every label comes from a fixed set (a known resource type, a
registered operation), so a client sending made-up URLs cannot grow the number of series.
"""
from __future__ import annotations

from django.http import HttpRequest

from fhir_api.rest import operations
from fhir_api.store.structure import resource_types

_BY_METHOD = {
    "fhir-instance": {"GET": "read", "HEAD": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"},
    # The type URL: search with GET; create and the conditional writes otherwise.
    "fhir-type": {"GET": "search-type", "HEAD": "search-type", "POST": "create", "PUT": "update",
                  "PATCH": "patch", "DELETE": "delete"},
    "fhir-system": {"GET": "search-system", "HEAD": "search-system", "POST": "batch-transaction"},
}
_BY_ROUTE = {
    "fhir-vread": "vread",
    "fhir-history-instance": "history-instance",
    "fhir-history-type": "history-type",
    "fhir-history-system": "history-system",
    "fhir-search-type": "search-type",
    "fhir-search-system": "search-system",
    "fhir-search-compartment": "search-compartment",
    "fhir-capabilities": "capabilities",
}
_OPERATION_ROUTES = frozenset({"fhir-operation-system", "fhir-operation-type", "fhir-operation-instance"})
_operation_names: frozenset[str] | None = None


def interaction_of(request: HttpRequest) -> tuple[str, str]:
    """(interaction, resource type) of a request under /fhir; "unknown" for unrouted URLs,
    "" for the resource type of system-level interactions and unknown types."""
    match = request.resolver_match
    method = request.method or ""
    if match is None or match.url_name is None:
        return "unknown", ""
    if method == "OPTIONS":
        interaction = "options"
    elif match.url_name in _BY_METHOD:
        interaction = _BY_METHOD[match.url_name].get(method, "unknown")
    elif match.url_name in _OPERATION_ROUTES:
        interaction = _operation_label(match.kwargs.get("name", ""))
    else:
        interaction = _BY_ROUTE.get(match.url_name, "unknown")
    resource_type = match.kwargs.get("resource_type", "")
    return interaction, resource_type if resource_type in resource_types() else ""


def _operation_label(name: str) -> str:
    global _operation_names
    if _operation_names is None:
        _operation_names = frozenset(op.name for op in operations.all_operations())
    return f"${name}" if name in _operation_names else "$unknown"
