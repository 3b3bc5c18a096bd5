"""The audit trail's filters, as the FHIR search of AuditEvents they stand for.

https://hl7.org/fhir/R4/auditevent.html#search -- who (`agent`: a fhirUser reference, or
`agent:identifier` with the account name), which app (`agent:identifier` with the OAuth client
id), which patient (`patient`), about which resource (`entity`), what (`type`, `subtype`,
`action`), when (`date`, a range of days) and the outcome (`outcome`), newest first
(`_sort=-date`). The page shows the query, so the same search can be run on the API.
"""
from __future__ import annotations

from typing import Any

from django import forms

from smart_auth.audit import balp
from smart_auth.models import Client

# What happened: (system, code) -> label, in the order staff look for them.
SUBTYPES: dict[str, tuple[str, str, str]] = {
    "read": (balp.INTERACTION, "read", "read"),
    "vread": (balp.INTERACTION, "vread", "read a version"),
    "search-type": (balp.INTERACTION, "search-type", "search"),
    "search-system": (balp.INTERACTION, "search-system", "search of every type"),
    "history-instance": (balp.INTERACTION, "history-instance", "history of a resource"),
    "history-type": (balp.INTERACTION, "history-type", "history of a type"),
    "create": (balp.INTERACTION, "create", "create"),
    "update": (balp.INTERACTION, "update", "update"),
    "patch": (balp.INTERACTION, "patch", "patch"),
    "delete": (balp.INTERACTION, "delete", "delete"),
    "batch": (balp.INTERACTION, "batch", "batch"),
    "transaction": (balp.INTERACTION, "transaction", "transaction"),
    "operation": (balp.INTERACTION, "operation", "operation"),
    "login": (balp.DCM, "110122", "sign-in"),
    "logout": (balp.DCM, "110123", "sign-out"),
    "authorize": (balp.OAUTH_EVENTS, "authorize", "authorization code issued"),
    "token": (balp.OAUTH_EVENTS, "token", "token granted"),
    "refresh": (balp.OAUTH_EVENTS, "refresh", "token refreshed"),
    "revoke": (balp.OAUTH_EVENTS, "revoke", "token revoked"),
    "introspect": (balp.OAUTH_EVENTS, "introspect", "token introspected"),
    "denied": (balp.OAUTH_EVENTS, "denied", "authorization denied"),
    "admin-add": (balp.OAUTH_EVENTS, "admin-add", "admin: added"),
    "admin-change": (balp.OAUTH_EVENTS, "admin-change", "admin: changed"),
    "admin-delete": (balp.OAUTH_EVENTS, "admin-delete", "admin: deleted"),
}
KINDS = {
    "rest": balp.REST,
    "authentication": balp.USER_AUTHENTICATION,
    "security": balp.SECURITY_ALERT,
}
ACTIONS = [("C", "create (C)"), ("R", "read (R)"), ("U", "update (U)"), ("D", "delete (D)"),
           ("E", "execute: searches, operations (E)")]
OUTCOMES = [("0", "success"), ("4,8", "any failure"), ("4", "refused (4xx)"), ("8", "server error (5xx)")]


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AuditFilter(forms.Form):
    who = forms.CharField(required=False, max_length=200, label="Who",
                          widget=forms.TextInput(attrs={"placeholder": "Practitioner/ID or account", "size": 20}),
                          help_text="A person's fhirUser reference, or the account name of someone without one.")
    app = forms.ModelChoiceField(Client.objects.none(), required=False, to_field_name="client_id", label="App",
                                 empty_label="any")
    patient = forms.CharField(required=False, max_length=200, label="Patient",
                              widget=forms.TextInput(attrs={"placeholder": "Patient/ID", "size": 14}))
    entity = forms.CharField(required=False, max_length=200, label="Resource",
                             widget=forms.TextInput(attrs={"placeholder": "Observation/ID", "size": 14}))
    kind = forms.ChoiceField(choices=[("", "any"), ("rest", "FHIR interaction"),
                                      ("authentication", "sign-in and authorization"),
                                      ("security", "admin change")], required=False, label="Kind")
    subtype = forms.ChoiceField(choices=[("", "any"), *((k, v[2]) for k, v in SUBTYPES.items())], required=False,
                                label="What")
    action = forms.ChoiceField(choices=[("", "any"), *ACTIONS], required=False, label="Action")
    outcome = forms.ChoiceField(choices=[("", "any"), *OUTCOMES], required=False, label="Outcome")
    since = forms.DateField(required=False, label="From", widget=_date_input())
    until = forms.DateField(required=False, label="Until", widget=_date_input(), help_text="Days in UTC, inclusive.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["app"].queryset = Client.objects.order_by("name")
        self.fields["app"].label_from_instance = lambda c: f"{c.name} ({c.client_id})"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            self.add_error("until", "The range ends before it starts.")
        entity = (data.get("entity") or "").strip()
        if entity and "/" not in entity:
            self.add_error("entity", "Give a reference: Type/ID.")
        patient = (data.get("patient") or "").strip()
        if patient.count("/") > 1 or (patient.count("/") == 1 and not patient.startswith("Patient/")):
            self.add_error("patient", "Give Patient/ID or the id.")
        return data

    def params(self) -> list[tuple[str, str]]:
        """The AuditEvent search these filters are (without paging and sorting)."""
        data = self.cleaned_data
        out: list[tuple[str, str]] = []
        who = (data.get("who") or "").strip()
        if who:
            kind, _, ident = who.partition("/")
            if ident and kind[:1].isupper():
                out.append(("agent", who))
            else:
                out.append(("agent:identifier", f"{balp.USER_IDS}|{who}"))
        if data.get("app"):
            out.append(("agent:identifier", f"{balp.CLIENT_ID}|{data['app'].client_id}"))
        patient = (data.get("patient") or "").strip()
        if patient:
            out.append(("patient", patient if patient.startswith("Patient/") else f"Patient/{patient}"))
        if (data.get("entity") or "").strip():
            out.append(("entity", data["entity"].strip()))
        if data.get("kind"):
            coding = KINDS[data["kind"]]
            out.append(("type", f"{coding['system']}|{coding['code']}"))
        if data.get("subtype"):
            system, code, _ = SUBTYPES[data["subtype"]]
            out.append(("subtype", f"{system}|{code}"))
        if data.get("action"):
            out.append(("action", data["action"]))
        if data.get("outcome"):
            out.append(("outcome", data["outcome"]))
        if data.get("since"):
            out.append(("date", f"ge{data['since'].isoformat()}"))
        if data.get("until"):
            out.append(("date", f"le{data['until'].isoformat()}"))
        return out
