"""The FHIR REST route table (https://hl7.org/fhir/R4/http.html#summary), mounted at /fhir."""
from django.urls import path, re_path

from fhir_api.views.instance import InstanceViewSet
from fhir_api.views.system import SystemViewSet
from fhir_api.views.type import TypeViewSet

TYPE = r"(?P<resource_type>[A-Z][A-Za-z]+)"
ID = r"(?P<logical_id>[^/$]+)"

urlpatterns = [
    path("", SystemViewSet.as_view({"post": "batch_or_transaction"}), name="fhir-system"),
    path("/metadata", SystemViewSet.as_view({"get": "capabilities"}), name="fhir-capabilities"),
    path("/_history", SystemViewSet.as_view({"get": "history"}), name="fhir-history-system"),
    re_path(rf"^/{TYPE}/_history$", TypeViewSet.as_view({"get": "history"}), name="fhir-history-type"),
    re_path(
        rf"^/{TYPE}$",
        TypeViewSet.as_view({
            "post": "create",
            "put": "conditional_update",
            "patch": "conditional_patch",
            "delete": "conditional_delete",
        }),
        name="fhir-type",
    ),
    re_path(
        rf"^/{TYPE}/{ID}/_history/(?P<version_id>[^/]+)$",
        InstanceViewSet.as_view({"get": "vread"}),
        name="fhir-vread",
    ),
    re_path(rf"^/{TYPE}/{ID}/_history$", InstanceViewSet.as_view({"get": "history"}), name="fhir-history-instance"),
    re_path(
        rf"^/{TYPE}/{ID}$",
        InstanceViewSet.as_view({"get": "read", "put": "update", "patch": "patch", "delete": "delete"}),
        name="fhir-instance",
    ),
]


def _unknown(request, path: str = ""):
    from fhir_api.errors import NotFound
    from fhir_api.responses import outcome_response

    return outcome_response(request, NotFound(f"No FHIR interaction at /fhir{path}", code="not-supported"))


urlpatterns.append(re_path(r"^(?P<path>.*)$", _unknown))
