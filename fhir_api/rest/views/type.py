"""Type level: create (also conditional), conditional update/patch/delete, history of a type.

https://hl7.org/fhir/R4/http.html#create and http.html#cond-update
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from fhir_api.rest import authorization, conditional, formats
from fhir_api.store import repository
from fhir_api.store.errors import BadRequest
from fhir_api.rest.responses import resource_response
from fhir_api.rest.views.base import FhirViewSet, if_match, prefer, query_string
from fhir_api.rest.views.history import history_bundle
from fhir_api.rest.views.instance import patch_function, written_response


def _criteria(request: HttpRequest) -> str:
    query = query_string(request)
    if not query:
        raise BadRequest("A conditional interaction on a type needs search criteria in the URL")
    return query


class TypeViewSet(FhirViewSet):
    def create(self, request: HttpRequest, resource_type: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "c")
        content = formats.parse_body(request)
        criteria = request.META.get("HTTP_IF_NONE_EXIST")
        if criteria:
            result = conditional.create(resource_type, content, criteria)
            if isinstance(result, repository.Stored):  # one match: nothing created
                return resource_response(request, result, status=200, prefer=prefer(request))
            return written_response(request, result)
        return written_response(request, repository.create(resource_type, content))

    def conditional_update(self, request: HttpRequest, resource_type: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "u")
        content = formats.parse_body(request)
        written = conditional.update(resource_type, content, _criteria(request), if_match=if_match(request))
        return written_response(request, written)

    def conditional_patch(self, request: HttpRequest, resource_type: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "u")
        written = conditional.patch(resource_type, _criteria(request), patch_function(request),
                                    if_match=if_match(request))
        return written_response(request, written)

    def conditional_delete(self, request: HttpRequest, resource_type: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "d")
        multiple = settings.FHIR_CONDITIONAL_DELETE_MULTIPLE or prefer(request, "handling") == "multiple-delete"
        conditional.delete(resource_type, _criteria(request), allow_multiple=multiple)
        return HttpResponse(status=204)

    def history(self, request: HttpRequest, resource_type: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "r")
        return history_bundle(request, f"{resource_type}/_history", resource_type)
