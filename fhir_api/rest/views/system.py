"""System level: capabilities, history of everything (https://hl7.org/fhir/R4/http.html#capabilities)."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from fhir_api.rest.capability import capability_statement
from fhir_api.rest import bundles, formats
from fhir_api.rest.responses import base_url, bundle_body, render
from fhir_api.rest.views.base import FhirViewSet
from fhir_api.rest.views.history import history_bundle


class SystemViewSet(FhirViewSet):
    public_actions = frozenset({"capabilities"})

    def capabilities(self, request: HttpRequest) -> HttpResponse:
        mode = request.GET.get("mode", "full")
        return render(request, capability_statement(base_url(request), mode))

    def batch_or_transaction(self, request: HttpRequest) -> HttpResponse:
        base = base_url(request)
        return bundle_body(request, bundles.process(request, formats.parse_body(request), base))

    def history(self, request: HttpRequest) -> HttpResponse:
        return history_bundle(request, "_history")
