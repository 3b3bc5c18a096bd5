"""Search at the three levels (https://hl7.org/fhir/R4/http.html#search and search.html).

`GET [type]?...` and `POST [type]/_search` (form-encoded; body and URL parameters merged),
`GET [base]?_type=...` / `POST [base]/_search`, and compartment search
`GET [base]/Patient/123/Observation` (or `/*`). The query itself is fhir_search's.
"""
from __future__ import annotations

from urllib.parse import parse_qsl

from django.http import HttpRequest, HttpResponse

from fhir_api.store import repository
from fhir_api.store.errors import BadRequest, UnsupportedMediaType
from fhir_api.rest import authorization
from fhir_api.rest.responses import base_url, bundle_body
from fhir_api.rest.views.base import FhirViewSet, prefer, query_string
from fhir_search.query.parse import parse_types
from fhir_api.rest.body import read_body
from fhir_search.service import search_bundle

_FORM = "application/x-www-form-urlencoded"


def search_params(request: HttpRequest) -> list[tuple[str, str]]:
    """(name, value) pairs in request order: the URL's, then a POSTed form's."""
    params = parse_qsl(query_string(request), keep_blank_values=True)
    if request.method == "POST":
        content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        body = read_body(request)
        if body and content_type != _FORM:
            raise UnsupportedMediaType(f"POST _search takes {_FORM}, not {content_type or 'no content type'}")
        try:
            params += parse_qsl(body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadRequest("The form body is not UTF-8") from None
    return params


def _strict(request: HttpRequest) -> bool:
    return prefer(request, "handling") == "strict"


class SearchViewSet(FhirViewSet):
    def search_type(self, request: HttpRequest, resource_type: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "s")
        bundle = search_bundle(
            base=base_url(request), path=resource_type, resource_type=resource_type,
            params=search_params(request), strict=_strict(request),
        )
        return bundle_body(request, bundle)

    def search_system(self, request: HttpRequest) -> HttpResponse:
        params = search_params(request)
        for resource_type in parse_types(params, strict=False) or ():  # named types must be allowed
            authorization.require(request, resource_type, "s")
        bundle = search_bundle(
            base=base_url(request), path="", resource_type=None, params=params, strict=_strict(request),
        )
        return bundle_body(request, bundle)

    def search_compartment(
        self, request: HttpRequest, compartment_type: str, compartment_id: str, resource_type: str
    ) -> HttpResponse:
        repository.check_type(compartment_type)
        repository.check_id(compartment_id)
        target = None if resource_type == "*" else resource_type
        if target is not None:
            repository.check_type(target)
            authorization.require(request, target, "s")
        bundle = search_bundle(
            base=base_url(request), path=f"{compartment_type}/{compartment_id}/{resource_type}",
            resource_type=target, params=search_params(request), strict=_strict(request),
            compartment=(compartment_type, compartment_id),
        )
        return bundle_body(request, bundle)
