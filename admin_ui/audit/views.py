"""The console's audit trail: a filtered list of AuditEvents and each event, read-only.

The list is the API's AuditEvent search (the same engine, parameters and `_sort=-date`, paged
by the engine's cursor); no page here writes anything, and a POST is refused (405). Looking
at the trail here records nothing, as reading it through the API records nothing: an event
per event read would grow the trail with every look at it.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_safe

from admin_ui import roles
from admin_ui.audit.query import AuditFilter
from admin_ui.audit.reading import Summary, summary_of
from admin_ui.resources.rendering import json_html
from admin_ui.resources.views import entry_resource, fhir_base, issues_of, page_context, requires
from fhir_api.store import jsonio
from fhir_api.store.audit import RESOURCE_TYPE
from fhir_api.store.errors import FhirError
from fhir_api.store.models import Resource
from fhir_search.service import search_bundle
from smart_auth.models import Client

PAGE_SIZE = 50


def _name_apps(events: list[Summary]) -> None:
    """The registered apps' names beside their client ids (one query for the page)."""
    names = dict(Client.objects.filter(client_id__in={e.app for e in events if e.app})
                 .values_list("client_id", "name"))
    for event in events:
        event.app_name = names.get(event.app, "")


def list_view(site):
    @requires(roles.VIEW_RESOURCES)
    @require_safe
    def view(request: HttpRequest) -> HttpResponse:
        filters = AuditFilter(request.GET)  # every filter is optional: none shows the newest events
        events, error, next_url, query = [], "", "", ""
        if not filters.is_valid():
            error = "Check the filters."
        else:
            params = [*filters.params(), ("_sort", "-date")]
            query = urlencode(params)
            params.append(("_count", str(PAGE_SIZE)))
            if request.GET.get("cursor"):
                params.append(("_cursor", request.GET["cursor"]))
            try:
                bundle = search_bundle(base=fhir_base(request), path=RESOURCE_TYPE, resource_type=RESOURCE_TYPE,
                                       params=params)
            except FhirError as exc:
                error = "; ".join(issues_of(exc))
            else:
                events = [summary_of(entry_resource(e)) for e in bundle.get("entry", [])
                          if e.get("search", {}).get("mode") == "match"]
                _name_apps(events)
                for link in bundle.get("link", []):
                    if link["relation"] == "next":
                        following = request.GET.copy()
                        following["cursor"] = parse_qs(urlsplit(link["url"]).query).get("_cursor", [""])[0]
                        next_url = "?" + following.urlencode()
        first = request.GET.copy()
        first.pop("cursor", None)
        return TemplateResponse(request, "admin_ui/audit_list.html", page_context(
            site, request, "Audit trail", filters=filters, events=events, error=error, next_url=next_url,
            first_url="?" + first.urlencode(), paged="cursor" in request.GET, api_query=query))
    return view


def event_view(site):
    @requires(roles.VIEW_RESOURCES)
    @require_safe
    def view(request: HttpRequest, logical_id: str) -> HttpResponse:
        row = Resource.objects.filter(resource_type=RESOURCE_TYPE, logical_id=logical_id, deleted=False).first()
        if row is None:
            raise Http404(f"AuditEvent/{logical_id} is not known")
        content = jsonio.loads(row.data)
        event = summary_of(content)
        _name_apps([event])
        return TemplateResponse(request, "admin_ui/audit_event.html", page_context(
            site, request, f"AuditEvent/{logical_id}", event=event, json_html=json_html(content),
            logical_id=logical_id))
    return view
