"""`Observation/$lastn`: the latest Observations of each code (https://hl7.org/fhir/R4/observation-operation-lastn.html).

GET with the search parameters of Observation and `max`; POST with a Parameters body or a form.
The work is `fhir_search.lastn`.
"""
from __future__ import annotations

from django.http import HttpResponse

from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import base_url, bundle_body
from fhir_api.rest.views.base import prefer
from fhir_api.rest.views.search import search_params
from fhir_search.lastn import lastn_bundle


def _params(invocation: Invocation) -> list[tuple[str, str]]:
    """The query's parameters, then those of a Parameters body (as their string values)."""
    if invocation.request.method != "POST" or invocation.request.META.get("CONTENT_TYPE", "").startswith(
            "application/x-www-form-urlencoded"):
        return search_params(invocation.request)
    pairs = []
    for p in invocation.parameters.get("parameter", []):
        for key, value in p.items():
            if key.startswith("value"):
                pairs.append((p.get("name", ""), str(value)))
    return pairs


@operation("lastn", levels=("type",), types=("Observation",), permission="s",
           definition="http://hl7.org/fhir/OperationDefinition/Observation-lastn")
def lastn(invocation: Invocation) -> HttpResponse:
    strict = prefer(invocation.request, "handling") == "strict"
    bundle = lastn_bundle(base=base_url(invocation.request), params=_params(invocation), strict=strict)
    return bundle_body(invocation.request, bundle)
