"""The consent section of the console: its routes, and its place in the sidebar."""
from __future__ import annotations

from django.urls import path

from admin_ui import navigation, roles
from admin_ui.consent import views


def patterns(site) -> list:
    def wrap(factory):
        return site.admin_view(factory(site))

    return [
        path("consent/", wrap(views.list_view), name="consent_list"),
        path("consent/add/", wrap(views.add_view), name="consent_add"),
        path("consent/<str:logical_id>/edit/", wrap(views.edit_view), name="consent_edit"),
        path("consent/patient/<str:patient_id>/", wrap(views.patient_view), name="consent_patient"),
    ]


navigation.register("consent", "Consent",
                    navigation.Page("Consent policies", "admin:consent_list", roles.VIEW_RESOURCES))
