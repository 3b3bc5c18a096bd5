"""The audit section of the console: its routes, and its place in the sidebar."""
from __future__ import annotations

from django.urls import path

from admin_ui import navigation, roles
from admin_ui.audit import views


def patterns(site) -> list:
    def wrap(factory):
        return site.admin_view(factory(site))

    return [
        path("audit/", wrap(views.list_view), name="audit_list"),
        path("audit/<str:logical_id>/", wrap(views.event_view), name="audit_event"),
    ]


navigation.register("audit", "Audit",
                    navigation.Page("Audit trail", "admin:audit_list", roles.VIEW_RESOURCES))
