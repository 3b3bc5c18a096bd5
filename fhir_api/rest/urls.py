"""The FHIR REST route table (https://hl7.org/fhir/R4/http.html#summary), mounted at /fhir."""
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from fhir_api.rest.views.instance import InstanceViewSet
from fhir_api.rest.views.jobs import JobViewSet
from fhir_api.rest.views.operation import OperationViewSet
from fhir_api.rest.views.search import SearchViewSet
from fhir_api.rest.views.system import SystemViewSet
from fhir_api.rest.views.base import allowed_methods, options_response
from fhir_api.rest.views.type import TypeViewSet

TYPE = r"(?P<resource_type>[A-Z][A-Za-z]+)"
ID = r"(?P<logical_id>[^/$]+)"


# -- search (fhir_search) routes. A DRF ViewSet maps methods to actions of one class, so
# the base and type URLs, shared with batch/create/conditional writes, pick the search
# view for GET and the existing view for everything else.
_SYSTEM_ACTIONS = {"post": "batch_or_transaction"}
_TYPE_ACTIONS = {
    "post": "create",
    "put": "conditional_update",
    "patch": "conditional_patch",
    "delete": "conditional_delete",
}
_search_system = SearchViewSet.as_view({"get": "search_system", "post": "search_system"})
_search_type = SearchViewSet.as_view({"get": "search_type", "post": "search_type"})
_system = SystemViewSet.as_view(dict(_SYSTEM_ACTIONS))
_type = TypeViewSet.as_view(dict(_TYPE_ACTIONS))


@csrf_exempt  # like the DRF views it dispatches to: FHIR clients send no CSRF token
def _system_route(request, **kwargs):
    if request.method == "OPTIONS":
        return options_response(allowed_methods({"get": ""}, _SYSTEM_ACTIONS))
    return (_search_system if request.method in ("GET", "HEAD") else _system)(request, **kwargs)


@csrf_exempt
def _type_route(request, **kwargs):
    if request.method == "OPTIONS":
        return options_response(allowed_methods({"get": ""}, _TYPE_ACTIONS))
    return (_search_type if request.method in ("GET", "HEAD") else _type)(request, **kwargs)


urlpatterns = [
    # The busiest route first (Django tries patterns in order, for every request); the type's
    # _history and _search before it, which it would otherwise take for ids.
    re_path(rf"^/{TYPE}/_history$", TypeViewSet.as_view({"get": "history"}), name="fhir-history-type"),
    re_path(rf"^/{TYPE}/_search$", _search_type, name="fhir-search-type"),
    re_path(
        rf"^/{TYPE}/{ID}$",
        InstanceViewSet.as_view({"get": "read", "put": "update", "patch": "patch", "delete": "delete"}),
        name="fhir-instance",
    ),
    path("", _system_route, name="fhir-system"),
    path("/", _system_route),  # the base with a trailing slash, as many clients write it
    path("/_search", _search_system, name="fhir-search-system"),
    re_path(r"^/\$(?P<name>[A-Za-z][A-Za-z0-9-]*)$", OperationViewSet.as_view({"get": "system", "post": "system"}),
            name="fhir-operation-system"),
    re_path(rf"^/{TYPE}/\$(?P<name>[A-Za-z][A-Za-z0-9-]*)$",
            OperationViewSet.as_view({"get": "type", "post": "type"}), name="fhir-operation-type"),
    re_path(rf"^/{TYPE}/{ID}/\$(?P<name>[A-Za-z][A-Za-z0-9-]*)$",
            OperationViewSet.as_view({"get": "instance", "post": "instance"}), name="fhir-operation-instance"),
    # Status URLs of jobs ($export, $reindex) and an export's files.
    re_path(r"^/_jobs/(?P<job_id>[A-Za-z0-9_-]{1,64})$", JobViewSet.as_view({"get": "status", "delete": "cancel"}),
            name="fhir-job"),
    re_path(r"^/_jobs/(?P<job_id>[A-Za-z0-9_-]{1,64})/(?P<name>[A-Za-z0-9_.-]{1,200})$",
            JobViewSet.as_view({"get": "file"}), name="fhir-job-file"),
    path("/metadata", SystemViewSet.as_view({"get": "capabilities"}), name="fhir-capabilities"),
    path("/_history", SystemViewSet.as_view({"get": "history"}), name="fhir-history-system"),
    re_path(rf"^/{TYPE}$", _type_route, name="fhir-type"),
    re_path(  # compartment search: /Patient/123/Observation or /Patient/123/*
        r"^/(?P<compartment_type>[A-Z][A-Za-z]+)/(?P<compartment_id>[^/$]+)/(?P<resource_type>[A-Z][A-Za-z]+|\*)$",
        SearchViewSet.as_view({"get": "search_compartment"}),
        name="fhir-search-compartment",
    ),
    re_path(
        rf"^/{TYPE}/{ID}/_history/(?P<version_id>[^/]+)$",
        InstanceViewSet.as_view({"get": "vread"}),
        name="fhir-vread",
    ),
    re_path(rf"^/{TYPE}/{ID}/_history$", InstanceViewSet.as_view({"get": "history"}), name="fhir-history-instance"),
]


@csrf_exempt  # an OperationOutcome, not Django's CSRF page, for a POST to an unknown path
def _unknown(request, path: str = ""):
    from fhir_api.store.errors import NotFound
    from fhir_api.rest.responses import outcome_response

    return outcome_response(request, NotFound(f"No FHIR interaction at /fhir{path}", code="not-supported"))


urlpatterns.append(re_path(r"^(?P<path>.*)$", _unknown))
