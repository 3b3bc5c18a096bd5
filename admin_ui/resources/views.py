"""The FHIR pages of the console: type list, resource list and search, resource, edit, versions.

Reads come from the store's tables and the search engine (the same `search_bundle` the API
answers with); every write (edit, create, delete, restore) goes through
fhir_api.store.repository, so it is validated, versioned and indexed like an API write. A
write the repository refuses is shown next to the field; it never answers 500.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from functools import wraps
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from admin_ui import roles
from admin_ui.resources import columns as cols
from admin_ui.resources.diff import diff
from admin_ui.resources.filters import filter_for
from admin_ui.resources.rendering import json_html, local_references, sanitised_narrative, xml_text
from fhir_api.store import jsonio, repository
from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
from fhir_api.store.errors import FhirError
from fhir_api.store.models import Resource, ResourceVersion
from fhir_api.store.structure import resource_types
from fhir_search import models as index_models
from fhir_search.service import search_bundle

PAGE_SIZE = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
INDEX_TABLES = [
    ("string", index_models.StringIndex), ("token", index_models.TokenIndex), ("date", index_models.DateIndex),
    ("number", index_models.NumberIndex), ("quantity", index_models.QuantityIndex),
    ("reference", index_models.ReferenceIndex), ("uri", index_models.UriIndex),
    ("composite", index_models.CompositeIndex), ("text", index_models.FullTextIndex),
    ("position", index_models.PositionIndex),
]
REFERENCED_BY_LIMIT = 100


def requires(permission: str):
    def decorate(view):
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs):
            if not request.user.has_perm(permission):
                raise PermissionDenied(f"You need the permission {permission}")
            return view(request, *args, **kwargs)
        return checked
    return decorate


def _check_type(resource_type: str) -> None:
    if resource_type not in resource_types():
        raise Http404(f"Unknown resource type {resource_type}")


def page_context(site, request: HttpRequest, title: str, **extra) -> dict:
    user = request.user
    writable = extra.get("resource_type") != AUDIT_TYPE  # the audit trail is read-only for everyone
    return {**site.each_context(request), "title": title,
            "can_change": writable and user.has_perm(roles.CHANGE_RESOURCES),
            "can_add": writable and user.has_perm(roles.ADD_RESOURCES),
            "can_delete": writable and user.has_perm(roles.DELETE_RESOURCES), **extra}


def check_writable(resource_type: str) -> None:
    """AuditEvents are appended by the server only: the console offers no way to change one
    (the repository would refuse it too)."""
    if resource_type == AUDIT_TYPE:
        raise PermissionDenied("The audit trail is read-only: AuditEvents cannot be created, edited, deleted "
                               "or restored")


def fhir_base(request: HttpRequest) -> str:
    return settings.FHIR_BASE_URL or request.build_absolute_uri("/fhir")


def _shown(cell: cols.Cell) -> dict[str, str]:
    url = ""
    if cell.reference:
        rtype, _, lid = cell.reference.partition("/")
        url = reverse("admin:fhir_resource", kwargs={"resource_type": rtype, "logical_id": lid})
    return {"text": cell.text, "url": url}


def _cells(resource_type: str, resource: dict) -> list[dict[str, str]]:
    if resource.get("resourceType") != resource_type:  # an included resource of another type
        return [_shown(cols.Cell(cols.summary(resource)))]
    return [_shown(column.value(resource)) for column in cols.columns_for(resource_type)]


def _row_cells(resource_type: str, data: str) -> list[dict[str, str]]:
    if not data:
        return [{"text": "(deleted)", "url": ""}]
    return _cells(resource_type, jsonio.loads(data))


# -- types -------------------------------------------------------------------------------


def types_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest) -> HttpResponse:
        from admin_ui.resources.counts import counts

        known = {c.resource_type: c for c in counts()}
        rows = [(t, known.get(t)) for t in sorted(resource_types())]
        return TemplateResponse(request, "admin_ui/types.html", page_context(site, request, "Resource types", rows=rows))
    return view


# -- list and search ---------------------------------------------------------------------


def _encode_cursor(last_updated: datetime, pk: int) -> str:
    return f"{(last_updated - _EPOCH) // timedelta(microseconds=1)}-{pk}"


def _decode_cursor(text: str) -> tuple[datetime, int] | None:
    micros, _, pk = text.partition("-")
    if not (micros.isdigit() and pk.isdigit() and len(micros) <= 17 and len(pk) <= 18):
        return None
    return _EPOCH + timedelta(microseconds=int(micros)), int(pk)


def _browse(request: HttpRequest, resource_type: str) -> dict:
    data = request.GET.copy()
    data.setdefault("state", "current")
    filterset = filter_for(resource_type, data, Resource.objects.filter(resource_type=resource_type))
    qs = filterset.qs.order_by("-last_updated", "-id")
    cursor = _decode_cursor(request.GET.get("after", ""))
    if cursor is not None:
        at, pk = cursor
        qs = qs.filter(Q(last_updated__lt=at) | Q(last_updated=at, id__lt=pk))
    page = list(qs.values_list("id", "logical_id", "last_updated", "deleted", "data")[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    rows = [{"id": lid, "last_updated": lu, "deleted": deleted, "cells": _row_cells(resource_type, data)}
            for _, lid, lu, deleted, data in page]
    next_url = None
    if more:
        params = request.GET.copy()
        params["after"] = _encode_cursor(page[-1][2], page[-1][0])
        next_url = "?" + params.urlencode()
    return {"rows": rows, "filter": filterset, "next_url": next_url, "first_url": "?" + _without(request, "after")}


def _without(request: HttpRequest, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


def _search(request: HttpRequest, resource_type: str, query: str) -> dict:
    """The FHIR search `query` on this type, answered by the API's own search engine."""
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    params = [(k, v) for k, v in params if k != "_cursor"]
    cursor = request.GET.get("cursor")
    if cursor:
        params.append(("_cursor", cursor))
    if not any(k == "_count" for k, _ in params):
        params.append(("_count", str(PAGE_SIZE)))
    try:
        bundle = search_bundle(base=fhir_base(request), path=resource_type, resource_type=resource_type,
                               params=params)
    except FhirError as exc:
        return {"rows": [], "search_error": exc.diagnostics, "search_issues": issues_of(exc)}
    rows, warnings = [], []
    for entry in bundle.get("entry", []):
        resource = entry_resource(entry)
        if entry.get("search", {}).get("mode") == "outcome":
            warnings.extend(i.get("diagnostics", "") for i in resource.get("issue", []))
            continue
        resource = entry_resource(entry)
        rows.append({
            "id": resource.get("id"), "type": resource.get("resourceType"),
            "mode": entry.get("search", {}).get("mode"),
            "last_updated": (resource.get("meta") or {}).get("lastUpdated"),
            "cells": _cells(resource_type, resource),
        })
    next_url = None
    for link in bundle.get("link", []):
        if link["relation"] == "next":
            token = parse_qs(urlsplit(link["url"]).query).get("_cursor", [""])[0]
            next_url = "?" + urlencode({"q": query, "cursor": token})
    return {"rows": rows, "search_warnings": warnings, "next_url": next_url, "total": bundle.get("total"),
            "first_url": "?" + urlencode({"q": query})}


def entry_resource(entry: dict) -> dict:
    """A searchset entry's resource as a dict (the engine passes stored JSON through unparsed)."""
    resource = entry["resource"]
    return resource if isinstance(resource, dict) else jsonio.loads(jsonio.dumps(resource))


def issues_of(exc: FhirError) -> list[str]:
    out = []
    for issue in exc.outcome()["issue"]:
        where = ", ".join(issue.get("expression") or [])
        out.append(f"{where}: {issue.get('diagnostics', '')}" if where else issue.get("diagnostics", ""))
    return out


def list_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest, resource_type: str) -> HttpResponse:
        _check_type(resource_type)
        query = request.GET.get("q", "").strip()
        found = _search(request, resource_type, query) if query else _browse(request, resource_type)
        context = page_context(site, request, f"{resource_type} resources", resource_type=resource_type, query=query,
                           columns=[c.label for c in cols.columns_for(resource_type)], **found)
        return TemplateResponse(request, "admin_ui/list.html", context)
    return view


# -- one resource --------------------------------------------------------------------------


def _current(resource_type: str, logical_id: str) -> Resource:
    _check_type(resource_type)
    row = Resource.objects.filter(resource_type=resource_type, logical_id=logical_id).first()
    if row is None:
        raise Http404(f"{resource_type}/{logical_id} is not known")
    return row


def _index_rows(row: Resource) -> list[dict]:
    out = []
    for kind, model in INDEX_TABLES:
        skip = {"id", "resource", "resource_type", "code"}
        for item in model.objects.filter(resource=row).order_by("code", "id"):
            values = {f.name: getattr(item, f.name) for f in model._meta.concrete_fields if f.name not in skip}
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None and v != "")
            out.append({"kind": kind, "code": item.code, "values": shown[:300]})
    return out


def _referenced_by(row: Resource) -> list[dict]:
    refs = (index_models.ReferenceIndex.objects.filter(target_type=row.resource_type, target_id=row.logical_id)
            .values_list("resource__resource_type", "resource__logical_id", "code").order_by("resource_id", "code"))
    grouped: dict[tuple[str, str], list[str]] = {}
    for rtype, lid, code in refs[: REFERENCED_BY_LIMIT * 4]:
        grouped.setdefault((rtype, lid), []).append(code)
    return [{"type": t, "id": i, "codes": ", ".join(dict.fromkeys(c))}
            for (t, i), c in list(grouped.items())[:REFERENCED_BY_LIMIT]]


def resource_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        row = _current(resource_type, logical_id)
        content = jsonio.loads(row.data) if not row.deleted else None
        context = page_context(
            site, request, f"{resource_type}/{logical_id}", row=row, resource_type=resource_type,
            logical_id=logical_id, deleted=row.deleted,
            json_html=json_html(content) if content else None,
            xml=xml_text(content) if content else None,
            narrative=sanitised_narrative(content) if content else None,
            references=[_shown(cols.Cell(r, r)) for r in local_references(content)] if content else [],
            referenced_by=_referenced_by(row), index_rows=_index_rows(row),
            last_version=ResourceVersion.objects.filter(resource=row, deleted=False).order_by("-version_id").first(),
            referenced_by_limit=REFERENCED_BY_LIMIT,
        )
        return TemplateResponse(request, "admin_ui/resource.html", context)
    return view


class ResourceForm(forms.Form):
    resource = forms.CharField(widget=forms.Textarea(attrs={"rows": 28, "class": "fhir-json", "spellcheck": "false"}),
                               label="Resource (JSON)")
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def parsed(self) -> dict | None:
        try:
            content = json.loads(self.cleaned_data["resource"])
        except ValueError as exc:
            self.add_error("resource", f"This is not JSON: {exc}")
            return None
        return content

    def refused(self, exc: FhirError) -> None:
        for message in issues_of(exc):
            self.add_error("resource", message)


def edit_view(site):
    @requires(roles.CHANGE_RESOURCES)
    def view(request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        check_writable(resource_type)
        row = _current(resource_type, logical_id)
        if row.deleted:
            messages.error(request, "A deleted resource cannot be edited; restore a version first.")
            return redirect("admin:fhir_history", resource_type=resource_type, logical_id=logical_id)
        if request.method == "POST":
            form = ResourceForm(request.POST)
            if form.is_valid() and (content := form.parsed()) is not None:
                try:
                    written = repository.update(resource_type, logical_id, content,
                                                if_match=form.cleaned_data.get("version"))
                except FhirError as exc:
                    form.refused(exc)
                else:
                    messages.success(request, f"Saved as version {written.stored.version_id}.")
                    return redirect("admin:fhir_resource", resource_type=resource_type, logical_id=logical_id)
        else:
            text = json.dumps(jsonio.loads(row.data), indent=2, ensure_ascii=False)
            form = ResourceForm(initial={"resource": text, "version": row.version_id})
        return TemplateResponse(request, "admin_ui/edit.html", page_context(
            site, request, f"Edit {resource_type}/{logical_id}", form=form, resource_type=resource_type,
            logical_id=logical_id, row=row))
    return view


def add_view(site):
    @requires(roles.ADD_RESOURCES)
    def view(request: HttpRequest, resource_type: str) -> HttpResponse:
        _check_type(resource_type)
        check_writable(resource_type)
        if request.method == "POST":
            form = ResourceForm(request.POST)
            if form.is_valid() and (content := form.parsed()) is not None:
                try:
                    written = repository.create(resource_type, content)
                except FhirError as exc:
                    form.refused(exc)
                else:
                    messages.success(request, f"Created {written.stored.reference}.")
                    return redirect("admin:fhir_resource", resource_type=resource_type,
                                    logical_id=written.stored.logical_id)
        else:
            form = ResourceForm(initial={"resource": json.dumps({"resourceType": resource_type}, indent=2)})
        return TemplateResponse(request, "admin_ui/edit.html", page_context(
            site, request, f"New {resource_type}", form=form, resource_type=resource_type, creating=True))
    return view


def delete_view(site):
    @requires(roles.DELETE_RESOURCES)
    def view(request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        check_writable(resource_type)
        row = _current(resource_type, logical_id)
        if request.method == "POST":
            try:
                version = int(request.POST.get("version", ""))
                repository.delete(resource_type, logical_id, if_match=version)
            except ValueError:
                messages.error(request, "The form did not say which version to delete; nothing was deleted.")
            except FhirError as exc:
                messages.error(request, f"Not deleted: {exc.diagnostics}")
            else:
                messages.success(request, f"Deleted {resource_type}/{logical_id}; its versions remain in history.")
            return redirect("admin:fhir_resource", resource_type=resource_type, logical_id=logical_id)
        return TemplateResponse(request, "admin_ui/delete.html", page_context(
            site, request, f"Delete {resource_type}/{logical_id}?", row=row, resource_type=resource_type,
            logical_id=logical_id))
    return view


# -- versions ------------------------------------------------------------------------------


def history_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        row = _current(resource_type, logical_id)
        versions = ResourceVersion.objects.filter(resource=row).order_by("-version_id")
        before = request.GET.get("before", "")
        if before.isdigit() and len(before) < 10:
            versions = versions.filter(version_id__lt=int(before))
        page = list(versions.only("version_id", "last_updated", "deleted", "method")[: PAGE_SIZE + 1])
        more = len(page) > PAGE_SIZE
        page = page[:PAGE_SIZE]
        return TemplateResponse(request, "admin_ui/history.html", page_context(
            site, request, f"History of {resource_type}/{logical_id}", row=row, resource_type=resource_type,
            logical_id=logical_id, versions=page,
            older_url=f"?before={page[-1].version_id}" if more else None))
    return view


def _version(row: Resource, version_id: int) -> ResourceVersion:
    version = ResourceVersion.objects.filter(resource=row, version_id=version_id).first()
    if version is None:
        raise Http404(f"{row}/_history/{version_id} is not known")
    return version


def version_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest, resource_type: str, logical_id: str, version_id: int) -> HttpResponse:
        row = _current(resource_type, logical_id)
        version = _version(row, version_id)
        content = jsonio.loads(version.data) if not version.deleted else None
        return TemplateResponse(request, "admin_ui/version.html", page_context(
            site, request, f"{resource_type}/{logical_id} version {version_id}", row=row, version=version,
            resource_type=resource_type, logical_id=logical_id,
            json_html=json_html(content) if content else None,
            narrative=sanitised_narrative(content) if content else None))
    return view


def diff_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        row = _current(resource_type, logical_id)
        try:
            old_id, new_id = int(request.GET.get("from", "")), int(request.GET.get("to", ""))
        except ValueError:
            messages.error(request, "Choose two versions to compare.")
            return redirect("admin:fhir_history", resource_type=resource_type, logical_id=logical_id)
        old, new = _version(row, old_id), _version(row, new_id)
        old_content = jsonio.loads(old.data) if not old.deleted else {}
        new_content = jsonio.loads(new.data) if not new.deleted else {}
        return TemplateResponse(request, "admin_ui/diff.html", page_context(
            site, request, f"{resource_type}/{logical_id}: version {old_id} to {new_id}", row=row,
            resource_type=resource_type, logical_id=logical_id, old=old, new=new,
            changes=diff(old_content, new_content)))
    return view


@require_POST
def _restore(request: HttpRequest, resource_type: str, logical_id: str, version_id: int) -> HttpResponse:
    check_writable(resource_type)
    row = _current(resource_type, logical_id)
    version = _version(row, version_id)
    if version.deleted:
        messages.error(request, f"Version {version_id} is a deletion; choose a version with content.")
        return redirect("admin:fhir_history", resource_type=resource_type, logical_id=logical_id)
    try:
        expected = int(request.POST.get("current", ""))
    except ValueError:
        expected = None
    content = jsonio.loads(version.data)
    try:
        written = repository.update(resource_type, logical_id, content, if_match=expected)
    except FhirError as exc:
        messages.error(request, f"Version {version_id} was not restored: {'; '.join(issues_of(exc))}")
        return redirect("admin:fhir_history", resource_type=resource_type, logical_id=logical_id)
    messages.success(request, f"Restored version {version_id} as version {written.stored.version_id}.")
    return redirect("admin:fhir_resource", resource_type=resource_type, logical_id=logical_id)


def restore_view(site):
    return requires(roles.CHANGE_RESOURCES)(_restore)


# -- the picker of people and organizations -----------------------------------------------

PICKABLE = ("Patient", "Practitioner", "RelatedPerson")
# What a picker may ask for with `types` (the consent form's patient, person and organization).
PICKER_TYPES = (*PICKABLE, "Organization")


def _picked_name(resource: dict) -> str:
    name = resource.get("name")
    return str(name) if isinstance(name, str) else cols.human_name(name)


def picker_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest) -> JsonResponse:
        """Resources of the asked types (`types`, by default Patients, Practitioners and
        RelatedPersons) whose name starts with `q` (or whose reference is `q`), searched like
        `GET /fhir/Patient?name=q`."""
        q = request.GET.get("q", "").strip()[:100]
        asked = [t for t in request.GET.get("types", "").split(",") if t in PICKER_TYPES] or list(PICKABLE)
        found: list[dict[str, str]] = []
        if q:
            for resource_type in asked:
                try:
                    bundle = search_bundle(base=fhir_base(request), path=resource_type, resource_type=resource_type,
                                           params=[("name", q), ("_count", "10")])
                except FhirError:
                    continue
                for entry in bundle.get("entry", []):
                    resource = entry_resource(entry)
                    if resource.get("resourceType") != resource_type:
                        continue
                    found.append({"reference": f"{resource_type}/{resource['id']}",
                                  "label": f"{_picked_name(resource)} ({resource_type})"})
            kind, _, lid = q.partition("/")
            if kind in asked and Resource.objects.filter(resource_type=kind, logical_id=lid, deleted=False).exists():
                found.insert(0, {"reference": q, "label": q})
        return JsonResponse({"results": found})
    return view
