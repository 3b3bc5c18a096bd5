"""The FHIR pages' routes under /admin/fhir/, each wrapped by the site (session, staff, 2FA)."""
from __future__ import annotations

from django.urls import path

from admin_ui.resources import views

ID = "<str:resource_type>/<str:logical_id>"


def patterns(site) -> list:
    def wrap(factory, **kw):
        return site.admin_view(factory(site), **kw)

    return [
        path("resource-types/", wrap(views.types_view), name="fhir_types"),
        path("fhir-user-picker/", wrap(views.picker_view), name="fhir_pick"),
        path("fhir/<str:resource_type>/", wrap(views.list_view), name="fhir_list"),
        path("fhir/<str:resource_type>/add/", wrap(views.add_view), name="fhir_add"),
        path(f"fhir/{ID}/", wrap(views.resource_view), name="fhir_resource"),
        path(f"fhir/{ID}/edit/", wrap(views.edit_view), name="fhir_edit"),
        path(f"fhir/{ID}/delete/", wrap(views.delete_view), name="fhir_delete"),
        path(f"fhir/{ID}/history/", wrap(views.history_view), name="fhir_history"),
        path(f"fhir/{ID}/history/diff/", wrap(views.diff_view), name="fhir_diff"),
        path(f"fhir/{ID}/history/<int:version_id>/", wrap(views.version_view), name="fhir_version"),
        path(f"fhir/{ID}/history/<int:version_id>/restore/", wrap(views.restore_view), name="fhir_restore"),
    ]
