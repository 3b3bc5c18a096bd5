"""The console's consent pages: the list of Consents, the consent form, and a patient's consents.

Reads go through the API's search engine (`GET /fhir/Consent?patient=...&status=...`); every
write goes through fhir_api.store.repository, so a Consent made here is validated, versioned,
indexed, compiled for enforcement (smart_auth.consent) and audited like an API write. A
Consent the repository refuses is shown above the form with the repository's words; nothing
is written.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from admin_ui import roles
from admin_ui.consent import reading
from admin_ui.consent.forms import (
    ConsentForm, ExceptionFormSet, NotEditable, exceptions_of, initial_of,
)
from admin_ui.resources import columns
from admin_ui.resources.views import entry_resource, fhir_base, issues_of, page_context, requires
from fhir_api.store import jsonio, repository
from fhir_api.store.errors import FhirError
from fhir_api.store.models import Resource
from fhir_search.service import search_bundle
from smart_auth.models import Client, ConsentNode

TYPE = "Consent"
PAGE_SIZE = 50
STATUSES = ["draft", "proposed", "active", "rejected", "inactive", "entered-in-error"]


def _search(request: HttpRequest, params: list[tuple[str, str]]) -> dict[str, Any]:
    """A Consent search by the API's engine (the admin's own reads are not audited)."""
    return search_bundle(base=fhir_base(request), path=TYPE, resource_type=TYPE, params=params)


def _found(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in bundle.get("entry", []):
        if entry.get("search", {}).get("mode") == "match":
            out.append(entry_resource(entry))
    return out


def _next_cursor(bundle: dict[str, Any]) -> str:
    for link in bundle.get("link", []):
        if link["relation"] == "next":
            return parse_qs(urlsplit(link["url"]).query).get("_cursor", [""])[0]
    return ""


def _patient_id(reference: str) -> str:
    kind, _, ident = reference.strip().rpartition("/")
    return ident if kind in ("", "Patient") else ""


# -- the list ------------------------------------------------------------------------------


class ConsentFilter(forms.Form):
    patient = forms.CharField(required=False, label="Patient", max_length=200,
                              widget=forms.TextInput(attrs={"placeholder": "Patient/ID", "size": 16}))
    actor = forms.CharField(required=False, label="Actor", max_length=200,
                            widget=forms.TextInput(attrs={"placeholder": "Practitioner/ID", "size": 18}))
    app = forms.ModelChoiceField(Client.objects.none(), required=False, to_field_name="client_id", label="App",
                                 empty_label="any")
    status = forms.ChoiceField(choices=[("", "any"), *((s, s) for s in STATUSES)], required=False, label="Status")
    decision = forms.ChoiceField(choices=[("", "any"), ("permit", "permit"), ("deny", "deny")], required=False,
                                 label="Permit or deny")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["app"].queryset = Client.objects.exclude(device_id="").order_by("name")

    def engine_params(self) -> list[tuple[str, str]]:
        """What the search engine narrows by (indexed: patient, status)."""
        data = self.cleaned_data
        params = []
        if data.get("patient"):
            params.append(("patient", f"Patient/{_patient_id(data['patient']) or data['patient'].strip()}"))
        if data.get("status"):
            params.append(("status", data["status"]))
        return params

    def keeps(self, content: dict[str, Any]) -> bool:
        """What the page narrows by itself: an actor named anywhere in the provisions (R4's
        `actor` parameter reads the root provision only), and the root's decision."""
        data = self.cleaned_data
        actors = reading.actors_in(content.get("provision") or {})
        if data.get("actor") and data["actor"].strip() not in actors:
            return False
        if data.get("app") and f"Device/{data['app'].device_id}" not in actors:
            return False
        return not data.get("decision") or reading.decision_of(content) == data["decision"]


def _row(content: dict[str, Any]) -> dict[str, Any]:
    provision = content.get("provision") or {}
    patient = _patient_id(((content.get("patient") or {}).get("reference")) or "")
    return {
        "id": content.get("id"), "status": content.get("status", ""), "patient": patient,
        "decision": reading.decision_of(content),
        "exceptions": len(provision.get("provision") or []),
        "actors": sorted(reading.actors_in(provision)),
        "types": ", ".join(c.get("code", "") for c in provision.get("class") or []),
        "period": columns.period(provision.get("period")),
        "last_updated": (content.get("meta") or {}).get("lastUpdated", ""),
    }


def list_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest) -> HttpResponse:
        filters = ConsentFilter(request.GET)  # every filter is optional: no filter lists every Consent
        rows, error, next_url = [], "", ""
        if not filters.is_valid():
            error = "Check the filters."
        else:
            params = [*filters.engine_params(), ("_sort", "-_lastUpdated"), ("_count", str(PAGE_SIZE))]
            if request.GET.get("cursor"):
                params.append(("_cursor", request.GET["cursor"]))
            try:
                bundle = _search(request, params)
            except FhirError as exc:
                error = "; ".join(issues_of(exc))
            else:
                rows = [_row(c) for c in _found(bundle) if filters.keeps(c)]
                cursor = _next_cursor(bundle)
                if cursor:
                    query = request.GET.copy()
                    query["cursor"] = cursor
                    next_url = "?" + query.urlencode()
        first = request.GET.copy()
        first.pop("cursor", None)
        return TemplateResponse(request, "admin_ui/consent_list.html", page_context(
            site, request, "Consent policies", filters=filters, rows=rows, error=error, next_url=next_url,
            first_url="?" + first.urlencode(), paged="cursor" in request.GET,
            can_add=request.user.has_perm(roles.ADD_RESOURCES)))
    return view


# -- the form ------------------------------------------------------------------------------


def _stored(logical_id: str) -> Resource:
    row = Resource.objects.filter(resource_type=TYPE, logical_id=logical_id).first()
    if row is None or row.deleted:
        raise Http404(f"Consent/{logical_id} is not known (or was deleted)")
    return row


def _form_page(site, request: HttpRequest, form: ConsentForm | None, exceptions, *, row: Resource | None,
               not_editable: str = "") -> HttpResponse:
    title = f"Edit Consent/{row.logical_id}" if row else "New consent policy"
    return TemplateResponse(request, "admin_ui/consent_form.html", page_context(
        site, request, title, form=form, exceptions=exceptions, row=row, not_editable=not_editable,
        media=form.media if form else None, resource_type=TYPE, logical_id=row.logical_id if row else ""))


def _write(form: ConsentForm, exceptions, row: Resource | None) -> repository.Stored | None:
    """Write the Consent through the repository; on refusal the form carries the reasons."""
    stored = jsonio.loads(row.data) if row else None
    content = form.consent(exceptions_of(exceptions), stored)
    try:
        if row is None:
            return repository.create(TYPE, content).stored
        return repository.update(TYPE, row.logical_id, content, if_match=form.cleaned_data.get("version")).stored
    except FhirError as exc:
        for message in issues_of(exc):
            form.add_error(None, message)
        return None


def _saved(request: HttpRequest, stored: repository.Stored, created: bool) -> HttpResponse:
    messages.success(request, f"{'Created' if created else 'Saved'} {stored.reference} (version {stored.version_id}).")
    patient = _patient_id(stored.content["patient"]["reference"])
    return redirect("admin:consent_patient", patient_id=patient)


def add_view(site):
    @requires(roles.ADD_RESOURCES)
    def view(request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            form, exceptions = ConsentForm(request.POST), ExceptionFormSet(request.POST, prefix="exception")
            if form.is_valid() and exceptions.is_valid() and (written := _write(form, exceptions, None)):
                return _saved(request, written, created=True)
        else:
            patient = request.GET.get("patient", "")
            form = ConsentForm(initial={"patient": f"Patient/{_patient_id(patient)}" if _patient_id(patient) else ""})
            exceptions = ExceptionFormSet(prefix="exception")
        return _form_page(site, request, form, exceptions, row=None)
    return view


def edit_view(site):
    @requires(roles.CHANGE_RESOURCES)
    def view(request: HttpRequest, logical_id: str) -> HttpResponse:
        row = _stored(logical_id)
        try:
            initial, exception_initials, extra = initial_of(jsonio.loads(row.data))
        except NotEditable as exc:
            return _form_page(site, request, None, None, row=row, not_editable=str(exc))
        if request.method == "POST":
            form = ConsentForm(request.POST, extra_choices=extra)
            exceptions = ExceptionFormSet(request.POST, prefix="exception", form_kwargs={"extra_choices": extra})
            if form.is_valid() and exceptions.is_valid() and (written := _write(form, exceptions, row)):
                return _saved(request, written, created=False)
        else:
            form = ConsentForm(initial={**initial, "version": row.version_id}, extra_choices=extra)
            exceptions = ExceptionFormSet(initial=exception_initials, prefix="exception",
                                          form_kwargs={"extra_choices": extra})
        return _form_page(site, request, form, exceptions, row=row)
    return view


# -- a patient's consents ------------------------------------------------------------------


def patient_view(site):
    @requires(roles.VIEW_RESOURCES)
    def view(request: HttpRequest, patient_id: str) -> HttpResponse:
        patient = Resource.objects.filter(resource_type="Patient", logical_id=patient_id).first()
        if patient is None:
            raise Http404(f"Patient/{patient_id} is not known")
        name = columns.human_name(jsonio.loads(patient.data).get("name")) if not patient.deleted else ""
        # Every Consent naming the patient (a patient has a handful): active ones decide.
        bundle = _search(request, [("patient", f"Patient/{patient_id}"), ("_sort", "-_lastUpdated"),
                                   ("_count", "100")])
        consents, others = [], []
        for content in _found(bundle):
            if content.get("status") != "active":
                others.append(_row(content))
                continue
            row = Resource.objects.filter(resource_type=TYPE, logical_id=content["id"]).only("id").first()
            consents.append({
                "id": content["id"], "reading": reading.reading_of(content), "date": content.get("dateTime", ""),
                "privacy": any(c.get("code") == "patient-privacy"
                               for c in (content.get("scope") or {}).get("coding") or []),
                "enforced": row is not None and ConsentNode.objects.filter(consent=row).exists(),
                "version": (content.get("meta") or {}).get("versionId", ""),
            })
        return TemplateResponse(request, "admin_ui/consent_patient.html", page_context(
            site, request, f"Consents of Patient/{patient_id}", patient_id=patient_id, patient_name=name,
            patient_deleted=patient.deleted, consents=consents, others=others,
            default=settings.FHIR_CONSENT_DEFAULT, auth_required=settings.FHIR_AUTH_REQUIRED,
            more=bool(_next_cursor(bundle)),
            add_url=reverse("admin:consent_add") + "?" + urlencode({"patient": f"Patient/{patient_id}"})))
    return view
