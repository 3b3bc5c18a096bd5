"""Root URLs: the front page and operations endpoints, the FHIR API under /fhir, the SMART/OAuth
server under /auth, the staff admin under /admin."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from fhir_api.rest.views.docs import api_docs, api_docs_asset, openapi_json
from fhirproject.front import front_page, healthz, readyz
from fhirproject.metrics import metrics_view
from smart_auth.discovery import smart_configuration_view

urlpatterns = [
    # The FHIR API first: it takes most requests, and Django tries the patterns in order.
    # These four before its routes, which would read ".well-known" as a resource type (and
    # answer the others as unknown FHIR URLs).
    path("fhir/.well-known/smart-configuration", smart_configuration_view, name="smart-configuration"),
    path("fhir/openapi.json", openapi_json, name="openapi"),
    path("fhir/docs", api_docs, name="api-docs"),
    path("fhir/docs/assets/<str:name>", api_docs_asset, name="api-docs-asset"),
    path("fhir", include("fhir_api.rest.urls")),
    path("", front_page, name="front-page"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("auth/", include("smart_auth.urls")),
    path("admin", RedirectView.as_view(pattern_name="admin:index")),
    path("admin/", admin.site.urls),
]
