"""Operations at the three levels: [base]/$op, [base]/[type]/$op, [base]/[type]/[id]/$op.

https://hl7.org/fhir/R4/operations.html#executing -- GET for operations that change nothing
(simple parameters in the query), POST with a Parameters body (or a resource) for all.
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from fhir_api.rest import formats, operations
from fhir_api.rest.body import read_body
from fhir_api.store import repository
from fhir_api.store.errors import MethodNotAllowed
from fhir_api.rest.views.base import FhirViewSet


def _invoke(request: HttpRequest, name: str, level: str, resource_type: str | None = None,
            logical_id: str | None = None) -> HttpResponse:
    if resource_type is not None:
        repository.check_type(resource_type)
    op = operations.find(name, level, resource_type)
    resource = None
    if request.method == "POST" and read_body(request).strip():
        body = formats.parse_body(request)
        if isinstance(body, dict) and body.get("resourceType") == "Parameters":
            parameters = body
        else:
            parameters, resource = {"resourceType": "Parameters", "parameter": []}, body
        parameters = {**parameters, "parameter": parameters.get("parameter", []) +
                      operations.parameters_from_query(request.GET)["parameter"]}
    else:
        if op.affects_state:
            raise MethodNotAllowed(f"${name} changes data: call it with POST")
        parameters = operations.parameters_from_query(request.GET)
    invocation = operations.Invocation(request, level, resource_type, logical_id, parameters, resource)
    return op.handler(invocation)


class OperationViewSet(FhirViewSet):
    def system(self, request: HttpRequest, name: str) -> HttpResponse:
        return _invoke(request, name, "system")

    def type(self, request: HttpRequest, resource_type: str, name: str) -> HttpResponse:
        return _invoke(request, name, "type", resource_type)

    def instance(self, request: HttpRequest, resource_type: str, logical_id: str, name: str) -> HttpResponse:
        return _invoke(request, name, "instance", resource_type, logical_id)
