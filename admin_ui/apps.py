"""The staff console: Django's admin, with the console's own site (admin_ui.site)."""
from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class AdminUiConfig(AppConfig):
    default = True
    name = "admin_ui"
    verbose_name = "Administration"

    def ready(self) -> None:
        from admin_ui import roles

        post_migrate.connect(roles.ensure_groups, dispatch_uid="admin_ui.roles")


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with ConsoleSite as `admin.site`."""

    default = False
    default_site = "admin_ui.site.ConsoleSite"
