"""The console's first page: resources per type, the latest changes, and the other sections."""
from __future__ import annotations

from django.template.response import TemplateResponse

from admin_ui import roles
from admin_ui.resources.counts import counts
from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
from fhir_api.store.models import ResourceVersion

RECENT = 20


def dashboard(site, request):
    can_view = request.user.has_perm(roles.VIEW_RESOURCES)
    context = {
        **site.each_context(request),
        "title": site.index_title,
        "app_list": site.get_app_list(request),
        "can_view_resources": can_view,
    }
    if can_view:
        context["counts"] = counts()
        context["estimated"] = any(c.estimated for c in context["counts"])
        # The (last_updated, id) index of the version table: the newest rows without a scan.
        context["recent"] = list(
            ResourceVersion.objects.exclude(resource_type=AUDIT_TYPE).order_by("-last_updated", "-id")
            .only("resource_type", "logical_id", "version_id", "last_updated", "deleted", "method")[:RECENT]
        )
    return TemplateResponse(request, "admin_ui/dashboard.html", context)
