"""The staff roles the console offers, as Django groups of model permissions.

Staff get rights through groups (or single permissions) on the user's page: a member of
"Resource viewers" reads every page of the FHIR section and changes nothing; "Resource
editors" also edit, delete and restore resources; "App managers" register apps, revoke
tokens and manage people. Superusers have every right. The groups are (re)made after each
`migrate`, so their permissions follow the code.
"""
from __future__ import annotations

from django.contrib.auth.models import Group, Permission

VIEW_RESOURCES = "fhir_api.view_resource"
CHANGE_RESOURCES = "fhir_api.change_resource"
ADD_RESOURCES = "fhir_api.add_resource"
DELETE_RESOURCES = "fhir_api.delete_resource"

GROUPS: dict[str, list[str]] = {
    "Resource viewers": [VIEW_RESOURCES, "fhir_api.view_resourceversion"],
    "Resource editors": [VIEW_RESOURCES, "fhir_api.view_resourceversion", ADD_RESOURCES, CHANGE_RESOURCES,
                         DELETE_RESOURCES],
    "App managers": [
        "smart_auth.view_client", "smart_auth.add_client", "smart_auth.change_client", "smart_auth.delete_client",
        "oauth2_provider.view_accesstoken", "oauth2_provider.delete_accesstoken",
        "oauth2_provider.view_refreshtoken", "oauth2_provider.delete_refreshtoken",
        "auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group",
        "smart_auth.view_fhiruserlink", "smart_auth.add_fhiruserlink", "smart_auth.change_fhiruserlink",
        "smart_auth.delete_fhiruserlink", VIEW_RESOURCES,
    ],
}


def _permission(name: str) -> Permission | None:
    app_label, codename = name.split(".")
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()


def ensure_groups(sender, using: str = "default", **kwargs) -> None:
    """Create the console's groups with exactly their permissions (after migrate)."""
    if sender.label != "admin_ui":
        return
    for name, codes in GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        permissions = [p for p in (_permission(code) for code in codes) if p is not None]
        group.permissions.set(permissions)
