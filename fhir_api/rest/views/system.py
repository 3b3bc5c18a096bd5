"""System level: capabilities, history of everything (https://hl7.org/fhir/R4/http.html#capabilities)."""
from __future__ import annotations

import hashlib

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
        response = render(request, capability_statement(base_url(request), mode))
        # The statement changes only when the server's definitions do: a content hash lets
        # clients and caches revalidate (http.html#capabilities: SHOULD carry an ETag).
        digest = hashlib.blake2b(response.content, digest_size=12).hexdigest()
        response["ETag"] = f'W/"{digest}"'
        return response

    def batch_or_transaction(self, request: HttpRequest) -> HttpResponse:
        base = base_url(request)
        return bundle_body(request, bundles.process(request, formats.parse_body(request), base))

    def history(self, request: HttpRequest) -> HttpResponse:
        return history_bundle(request, "_history")
