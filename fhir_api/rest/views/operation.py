"""Operations at the three levels: [base]/$op, [base]/[type]/$op, [base]/[type]/[id]/$op.

https://hl7.org/fhir/R4/operations.html#executing -- GET for operations that change nothing
(simple parameters in the query), POST with a Parameters body (or a resource) for all.
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from fhir_api.rest import authorization, formats, operations
from fhir_api.rest.body import read_body
from fhir_api.store import repository
from fhir_api.store.errors import Forbidden, MethodNotAllowed
from fhir_api.rest.views.base import FhirViewSet


def _invoke(request: HttpRequest, name: str, level: str, resource_type: str | None = None,
            logical_id: str | None = None) -> HttpResponse:
    if resource_type is not None:
        repository.check_type(resource_type)
    op = operations.find(name, level, resource_type)
    _authorize(request, op, resource_type, logical_id)
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
        # A POST without a body is a call with no parameters (`curl -X POST .../$reindex`);
        # only a GET of an operation that changes data is refused.
        if op.affects_state and request.method != "POST":
            raise MethodNotAllowed(f"${name} changes data: call it with POST")
        parameters = operations.parameters_from_query(request.GET)
    invocation = operations.Invocation(request, level, resource_type, logical_id, parameters, resource)
    return op.handler(invocation)


def _authorize(request: HttpRequest, op: operations.Operation, resource_type: str | None,
               logical_id: str | None) -> None:
    access = getattr(request, "access", None)
    if access is None:
        return
    if op.everything and not access.unrestricted("*", op.permission or "r"):
        raise Forbidden(f"${op.name} needs a token whose scopes reach all data (e.g. system/*.cruds)")
    if op.permission is None:
        return
    if logical_id is not None and resource_type is not None:
        if op.permission == "r":
            authorization.require_visible(request, resource_type, logical_id, "r")
        else:
            authorization.require_writable(request, resource_type, logical_id, op.permission)
    else:
        authorization.require(request, resource_type or "*", op.permission)


class OperationViewSet(FhirViewSet):
    def system(self, request: HttpRequest, name: str) -> HttpResponse:
        return _invoke(request, name, "system")

    def type(self, request: HttpRequest, resource_type: str, name: str) -> HttpResponse:
        return _invoke(request, name, "type", resource_type)

    def instance(self, request: HttpRequest, resource_type: str, logical_id: str, name: str) -> HttpResponse:
        return _invoke(request, name, "instance", resource_type, logical_id)
