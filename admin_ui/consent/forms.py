"""The consent form: a patient-privacy Consent as staff fill it in, and back.

https://hl7.org/fhir/R4/consent.html -- the form writes an R4 Consent: `status` active or
inactive, `scope` patient-privacy, `category` LOINC 59284-0 (Patient Consent), `patient`,
`dateTime`, `policyRule` (ppc-1 asks for a policy or a policyRule; OPTIN for a permit, OPTOUT
for a deny, as smart_auth.consent reads them) and `provision`: permit or deny, for whom
(a person, an app as its Device, an Organization), which resource types and security labels,
for which purposes of use, during which period, with exceptions one level down
(`provision.provision`). Whatever else a stored Consent holds at the top (identifier,
performer, sourceAttachment...) is kept as it is.

A stored Consent the form cannot show without losing something (deeper exceptions, `data`,
`code`, `action`, a time in a period, several people in one provision...) is not offered in
the form: `NotEditable` says why, and its JSON is edited on the resource page instead.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any

from django import forms
from django.urls import reverse

from admin_ui.consent import choices
from fhir_api.store.models import Resource
from smart_auth.models import Client

PERSON_TYPES = ("Patient", "Practitioner", "RelatedPerson")
DECISIONS = [("permit", "Permit"), ("deny", "Deny")]
STATUSES = [("active", "Active (in force)"), ("inactive", "Inactive (kept, decides nothing)")]
# What the form shows of a provision; anything else makes the Consent one to edit as JSON.
SHOWN = frozenset({"type", "period", "actor", "securityLabel", "purpose", "class", "provision"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


class NotEditable(Exception):
    """The stored Consent holds what the form cannot show; the message says what."""


def existing(value: str, types: tuple[str, ...], default_type: str | None = None) -> str:
    """`Type/id` of a current resource of one of `types`, or a ValidationError saying why not."""
    value = value.strip()
    kind, _, ident = value.rpartition("/")
    if not kind and default_type:
        kind = default_type
    if kind not in types or not ident:
        raise forms.ValidationError(f"Give a reference to a {' or '.join(types)} (Type/id), not {value!r}.")
    if not Resource.objects.filter(resource_type=kind, logical_id=ident, deleted=False).exists():
        raise forms.ValidationError(f"{kind}/{ident} does not exist on this server.")
    return f"{kind}/{ident}"


class ReferenceField(forms.CharField):
    """A reference typed or chosen with the picker (admin_ui/picker.js), checked to exist."""

    def __init__(self, types: tuple[str, ...], *args: Any, default_type: str | None = None, **kwargs: Any) -> None:
        self.types, self.default_type = types, default_type
        placeholder = "type a name, or " + " / ".join(f"{t}/ID" for t in types[:2])
        kwargs.setdefault("widget", forms.TextInput(attrs={"class": "fhir-user-picker", "autocomplete": "off",
                                                           "placeholder": placeholder}))
        super().__init__(*args, max_length=200, **kwargs)

    def picker_url(self) -> str:
        return reverse("admin:fhir_pick") + "?types=" + ",".join(self.types)

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        return existing(value, self.types, self.default_type) if value else ""


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class ProvisionForm(forms.Form):
    """One provision: its decision and what it applies to (every criterion given must match;
    within a criterion, any one of its values)."""

    decision = forms.ChoiceField(choices=DECISIONS, widget=forms.RadioSelect, label="Decision")
    person = ReferenceField(PERSON_TYPES, required=False, label="Person",
                            help_text="A Patient, Practitioner or RelatedPerson: the person behind the token "
                                      "(fhirUser).")
    app = forms.ModelChoiceField(Client.objects.none(), required=False, to_field_name="client_id", label="App",
                                 help_text="A registered client app (named in the Consent as its Device).")
    organization = ReferenceField(("Organization",), required=False, label="Organization",
                                  help_text="Of the person's PractitionerRoles, or the owner of the app's Device.")
    classes = forms.MultipleChoiceField(required=False, label="Resource types",
                                        widget=forms.SelectMultiple(attrs={"size": 7}),
                                        help_text="None chosen: every type of the patient's record.")
    labels = forms.MultipleChoiceField(required=False, label="Security labels", widget=forms.CheckboxSelectMultiple,
                                       help_text="Resources carrying one of these in meta.security.")
    purposes = forms.MultipleChoiceField(required=False, label="Purpose of use",
                                         widget=forms.SelectMultiple(attrs={"size": 5}),
                                         help_text="The token's purpose of use (v3 ActReason). None chosen: any.")
    start = forms.DateField(required=False, label="From", widget=_date_input())
    end = forms.DateField(required=False, label="Until", widget=_date_input(),
                          help_text="The period in which requests are decided by this provision.")

    def __init__(self, *args: Any, extra_choices: dict[str, list[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        extra = extra_choices or {}
        for item in self.fields.values():
            if isinstance(item, ReferenceField):
                item.widget.attrs["data-picker-url"] = item.picker_url()
        self.fields["app"].queryset = Client.objects.exclude(device_id="").order_by("name")
        self.fields["app"].label_from_instance = lambda c: f"{c.name} ({c.client_id})"
        types = sorted({*choices.governed_types(), *extra.get("classes", [])})
        self.fields["classes"].choices = [(t, t) for t in types]
        labels = {choices.label_key(s, c): choices.label_text(s, c) for s, c in choices.LABELS}
        for key in extra.get("labels", []):
            system, _, code = key.rpartition("|")
            labels.setdefault(key, choices.label_text(system, code))
        self.fields["labels"].choices = list(labels.items())
        purposes = [*choices.PURPOSES, *(p for p in extra.get("purposes", []) if p not in choices.PURPOSES)]
        self.fields["purposes"].choices = [(p, choices.purpose_text(p)) for p in purposes]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The period ends before it starts.")
        return data

    def provision(self) -> dict[str, Any]:
        """The provision as R4 JSON (elements in the order the spec lists them)."""
        data = self.cleaned_data
        out: dict[str, Any] = {"type": data["decision"]}
        if data.get("start") or data.get("end"):
            out["period"] = {k: data[k].isoformat() for k in ("start", "end") if data.get(k)}
        actors = [data.get("person"), f"Device/{data['app'].device_id}" if data.get("app") else "",
                  data.get("organization")]
        if any(actors):
            out["actor"] = [{"role": choices.ACTOR_ROLE, "reference": {"reference": a}} for a in actors if a]
        if data.get("labels"):
            out["securityLabel"] = [dict(zip(("system", "code"), k.rsplit("|", 1), strict=True))
                                    for k in data["labels"]]
        if data.get("purposes"):
            out["purpose"] = [{"system": choices.ACT_REASON, "code": p} for p in data["purposes"]]
        if data.get("classes"):
            out["class"] = [{"system": choices.RESOURCE_TYPES, "code": t} for t in data["classes"]]
        return out


class ConsentForm(ProvisionForm):
    """The Consent itself and its root provision."""

    patient = ReferenceField(("Patient",), default_type="Patient", label="Patient",
                             help_text="Whose data this Consent governs.")
    status = forms.ChoiceField(choices=STATUSES, initial="active", label="Status")
    date = forms.DateField(label="Consent given on", widget=_date_input(), initial=date.today)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    field_order = ["patient", "status", "date", "decision"]

    class Media:
        js = ["admin_ui/picker.js"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["patient"].widget.attrs["placeholder"] = "type a name, or Patient/ID"

    def consent(self, exceptions: list[dict[str, Any]], stored: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Consent to write: the stored one's other elements, and the form's."""
        data = self.cleaned_data
        provision = self.provision()
        if exceptions:
            provision["provision"] = exceptions
        # The stored Consent's other elements stay (identifier, performer, policy...); the
        # form's replace their own.
        out: dict[str, Any] = {**(stored or {}), "resourceType": "Consent"}
        out["status"] = data["status"]
        out["scope"] = choices.PATIENT_PRIVACY
        out["category"] = out.get("category") or [choices.PATIENT_CONSENT]
        out["patient"] = {"reference": data["patient"]}
        out["dateTime"] = data["date"].isoformat()
        out["policyRule"] = choices.POLICY_RULES[data["decision"]]
        out["provision"] = provision
        return out


class ExceptionForm(ProvisionForm):
    """An exception to the Consent's provision (provision.provision): it decides, in place of
    the provision above it, where it applies."""


ExceptionFormSet = forms.formset_factory(ExceptionForm, extra=1, can_delete=True, max_num=20, validate_max=True)


def exceptions_of(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    return [f.provision() for f in formset.forms
            if f.has_changed() and not (formset.can_delete and f.cleaned_data.get("DELETE"))]


# -- a stored Consent in the form ----------------------------------------------------------


def _reference(actor: dict[str, Any]) -> str:
    return str((actor.get("reference") or {}).get("reference") or "")


def _provision_initial(provision: dict[str, Any], where: str, extra: dict[str, list[str]]) -> dict[str, Any]:
    if provision.get("type") not in ("permit", "deny"):
        raise NotEditable(f"{where} does not say permit or deny")
    unshown = sorted(set(provision) - SHOWN - {"id", "extension"})
    if unshown:
        raise NotEditable(f"{where} has {', '.join(unshown)}, which the form does not cover")
    initial: dict[str, Any] = {"decision": provision["type"]}
    period = provision.get("period") or {}
    for key in ("start", "end"):
        if key in period:
            if not _DATE.match(str(period[key])):
                raise NotEditable(f"{where}.period.{key} has a time of day; the form takes dates")
            initial[key] = date.fromisoformat(period[key])
    for actor in provision.get("actor") or []:
        kind, _, ident = _reference(actor).rpartition("/")
        slot = "person" if kind in PERSON_TYPES else "organization" if kind == "Organization" else (
            "app" if kind == "Device" else None)
        if slot is None or slot in initial:
            raise NotEditable(f"{where} names actors the form cannot show (one person, one app and one "
                              "organization at most)")
        if slot == "app":
            client = Client.objects.filter(device_id=ident).first()
            if client is None:
                raise NotEditable(f"{where} names Device/{ident}, which is no registered app's")
            initial["app"] = client.client_id
        else:
            initial[slot] = f"{kind}/{ident}"
    labels = []
    for coding in provision.get("securityLabel") or []:
        labels.append(choices.label_key(coding.get("system") or "", coding.get("code") or ""))
    purposes = [c.get("code") or "" for c in provision.get("purpose") or []]
    classes = [c.get("code") or "" for c in provision.get("class") or []]
    if any(c.get("system") not in (choices.RESOURCE_TYPES, None) for c in provision.get("class") or []):
        raise NotEditable(f"{where}.class holds codes that are not resource types")
    if any(c.get("system") not in (choices.ACT_REASON, None) for c in provision.get("purpose") or []):
        raise NotEditable(f"{where}.purpose holds codes that are not v3 ActReason codes")
    initial.update(labels=labels, purposes=purposes, classes=classes)
    extra["labels"] += labels
    extra["purposes"] += purposes
    extra["classes"] += classes
    return initial


def initial_of(content: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, list[str]]]:
    """(the form's initial, the exceptions' initials, the choices they need) of a stored Consent."""
    codes = [c.get("code") for c in (content.get("scope") or {}).get("coding") or []]
    if "patient-privacy" not in codes:
        raise NotEditable("its scope is not patient-privacy")
    if content.get("status") not in ("active", "inactive"):
        raise NotEditable(f"its status is {content.get('status')!r} (the form offers active and inactive)")
    extra: dict[str, list[str]] = {"labels": [], "purposes": [], "classes": []}
    provision = content.get("provision") or {}
    initial = _provision_initial(provision, "Consent.provision", extra)
    exceptions = []
    for i, child in enumerate(provision.get("provision") or []):
        if child.get("provision"):
            raise NotEditable(f"Consent.provision.provision[{i}] has exceptions of its own (the form shows one level)")
        exceptions.append(_provision_initial(child, f"Consent.provision.provision[{i}]", extra))
    when = str(content.get("dateTime") or "")[:10]
    initial.update(patient=((content.get("patient") or {}).get("reference") or ""), status=content["status"],
                   date=date.fromisoformat(when) if _DATE.match(when) else date.today())
    return initial, exceptions, extra
