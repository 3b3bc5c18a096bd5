"""Root URLs: the FHIR API under /fhir, the SMART/OAuth server under /auth, the staff admin under /admin."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from smart_auth.discovery import smart_configuration_view

urlpatterns = [
    path("auth/", include("smart_auth.urls")),
    # Before the FHIR routes, which would read ".well-known" as a resource type.
    path("fhir/.well-known/smart-configuration", smart_configuration_view, name="smart-configuration"),
    path("fhir", include("fhir_api.rest.urls")),
    path("admin", RedirectView.as_view(pattern_name="admin:index")),
    path("admin/", admin.site.urls),
]
