"""Root URLs: the FHIR API under /fhir, the SMART/OAuth server under /auth, the staff admin under /admin."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("auth/", include("smart_auth.urls")),
    path("fhir", include("fhir_api.rest.urls")),
    path("admin/", admin.site.urls),
]
