"""Client apps in the console: register, edit, disable, delete, rotate a secret.

The same records, under the same rules, as the `smart_client` command: every registration
and change passes smart_auth.registration. A client secret is shown once, on the page that
answers the registration or rotation (never stored in the session or a message), and is
stored only as a hash.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from smart_auth import registration
from smart_auth.models import Client

PUBLIC, SECRET, KEYS = "public", "secret", "keys"
KINDS = [
    (SECRET, "Confidential: client secret (HTTP Basic)"),
    (KEYS, "Confidential: public keys (private_key_jwt, JWKS or JWKS URL)"),
    (PUBLIC, "Public: no secret (PKCE only)"),
]
GRANTS = [(registration.AUTHORIZATION_CODE, "authorization_code (apps used by people)"),
          (registration.CLIENT_CREDENTIALS, "client_credentials (backend services)")]
# Which field a registration refusal is about, from the option it names.
_FIELD_OF = [("client_credentials client", "grant_type"), ("--redirect-uri", "redirect_uris"), ("--jwks-uri", "jwks_uri"), ("--jwks", "jwks"),
             ("--launch-uri", "launch_uri"), ("--purpose-of-use", "purpose_of_use"), ("scope", "allowed_scopes"),
             ("--name", "name"), ("--grant-type", "grant_type"), ("--public", "kind"),
             ("lifetime", "access_token_lifetime")]
# The command's option names, as the form's fields are labelled.
_WORDING = [("--jwks FILE", "a JWKS"), ("--jwks-uri URL", "a JWKS URL"), ("--jwks/--jwks-uri", "the keys"),
            ("--jwks-uri", "JWKS URL"), ("--jwks", "JWKS"), ("--redirect-uri", "redirect URI"),
            ("--launch-uri", "launch URL"), ("--purpose-of-use", "purpose of use"), ("--grant-type", "grant type"),
            ("--public", "public"), ("--name", "name"), ("--scope", "scope"), ("(--grant-type client_credentials)", "")]


def _worded(message: str) -> str:
    for option, label in _WORDING:
        message = message.replace(option, label)
    return message


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", " ").split() if line.strip()]


class ClientForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=KINDS, label="Client kind")
    grant_type = forms.ChoiceField(choices=GRANTS, label="Grant type")

    class Meta:
        model = Client
        fields = ["name", "redirect_uris", "launch_uri", "allowed_scopes", "jwks", "jwks_uri", "is_active",
                  "access_token_lifetime", "refresh_token_lifetime", "purpose_of_use", "break_glass"]
        widgets = {
            "redirect_uris": forms.Textarea(attrs={"rows": 3}),
            "allowed_scopes": forms.Textarea(attrs={"rows": 2}),
            "jwks": forms.Textarea(attrs={"rows": 4, "class": "fhir-json"}),
        }
        labels = {"redirect_uris": "Redirect URIs", "launch_uri": "Launch URL", "jwks": "JWKS", "jwks_uri": "JWKS URL",
                  "allowed_scopes": "Allowed scopes", "break_glass": "May break the glass (ETREAT)"}
        help_texts = {
            "redirect_uris": "One per line; redirects must match exactly.",
            "allowed_scopes": "Space-separated, e.g. launch openid fhirUser patient/*.rs. Blank: any scope of the app's kind.",
            "jwks": "A JSON Web Key Set of public RSA or EC keys, each with a kid (or give a JWKS URL instead).",
            "purpose_of_use": "A v3 ActReason code such as TREAT.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        client = self.instance
        if client.pk:
            kind = registration.authentication(client)
            self.initial["kind"] = {"none": PUBLIC, "private_key_jwt": KEYS}.get(kind, SECRET)
            self.initial["grant_type"] = (registration.CLIENT_CREDENTIALS
                                          if client.authorization_grant_type == Client.GRANT_CLIENT_CREDENTIALS
                                          else registration.AUTHORIZATION_CODE)
        self.fields["access_token_lifetime"].required = False
        self.fields["refresh_token_lifetime"].required = False

    def registration_fields(self) -> dict:
        data = self.cleaned_data
        keys = data.get("kind") == KEYS
        return {
            "name": data.get("name") or "",
            "redirect_uris": _lines(data.get("redirect_uris") or ""),
            "public": data.get("kind") == PUBLIC,
            "grant_type": data.get("grant_type") or "",
            "scopes": (data.get("allowed_scopes") or "").split(),
            "jwks": (data.get("jwks") or "").strip() or None if keys else None,
            "jwks_uri": (data.get("jwks_uri") or "").strip() or None if keys else None,
            "launch_uri": (data.get("launch_uri") or "").strip() or None,
            "purpose_of_use": data.get("purpose_of_use") or "",
        }

    def clean(self):
        data = super().clean()
        if data.get("kind") == KEYS and not (data.get("jwks") or "").strip() and not (data.get("jwks_uri") or ""):
            self.add_error("jwks", "A client that authenticates with keys needs a JWKS or a JWKS URL.")
            return data
        try:
            checked = registration.check_registration(**self.registration_fields())
        except registration.RegistrationError as exc:
            message = str(exc)
            field = next((f for marker, f in _FIELD_OF if marker in message), None)
            self.add_error(field, _worded(message))
            return data
        # What DOT's own model checks (run next, by the ModelForm) look at.
        self.instance.client_type = checked.client_type
        self.instance.authorization_grant_type = registration.GRANT_TYPES[checked.grant_type]
        self.instance.algorithm = (Client.RS256_ALGORITHM if checked.grant_type == registration.AUTHORIZATION_CODE
                                   else Client.NO_ALGORITHM)
        self.instance.redirect_uris = " ".join(checked.redirect_uris)
        for name in ("access_token_lifetime", "refresh_token_lifetime"):
            if data.get(name) in (None, "") and self.instance.pk:
                data[name] = getattr(Client.objects.get(pk=self.instance.pk), name)
        return data


def _copy(source: Client, target: Client) -> None:
    for field in Client._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


@admin.action(description="Disable the selected apps (their tokens stop working)", permissions=["change"])
def disable_apps(modeladmin, request, queryset) -> None:
    n = queryset.update(is_active=False)
    messages.success(request, f"Disabled {n} app{'s' if n != 1 else ''}.")


@admin.action(description="Enable the selected apps", permissions=["change"])
def enable_apps(modeladmin, request, queryset) -> None:
    n = queryset.update(is_active=True)
    messages.success(request, f"Enabled {n} app{'s' if n != 1 else ''}.")


class ClientAdmin(admin.ModelAdmin):
    form = ClientForm
    list_display = ["name", "client_id", "authentication", "grant", "is_active", "created"]
    list_filter = ["is_active", "client_type", "authorization_grant_type"]
    search_fields = ["name", "client_id"]
    readonly_fields = ["client_id", "created", "updated"]
    actions = [disable_apps, enable_apps]
    show_full_result_count = False
    change_form_template = "admin_ui/client_change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "client_id", "kind", "grant_type", "is_active"]}),
        ("Redirects and launch", {"fields": ["redirect_uris", "launch_uri"]}),
        ("Scopes", {"fields": ["allowed_scopes", "purpose_of_use", "break_glass"]}),
        ("Keys (private_key_jwt and backend services)", {"fields": ["jwks", "jwks_uri"]}),
        ("Token lifetimes (seconds)", {"fields": ["access_token_lifetime", "refresh_token_lifetime"]}),
        ("Record", {"fields": ["created", "updated"]}),
    ]

    @admin.display(description="Authentication")
    def authentication(self, client: Client) -> str:
        return registration.authentication(client)

    @admin.display(description="Grant type")
    def grant(self, client: Client) -> str:
        return registration.describe(client)["grant_type"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # no id or record times before there is a client
            return [(name, {"fields": [f for f in opts["fields"] if f not in self.readonly_fields]})
                    for name, opts in self.fieldsets if name != "Record"]
        return self.fieldsets

    def save_model(self, request, obj: Client, form: ClientForm, change: bool) -> None:
        fields = form.registration_fields()
        if not change:
            made = registration.register(break_glass=form.cleaned_data.get("break_glass", False), **fields)
            _copy(made.client, obj)
            request.shown_secret = made.client_secret
            return
        stored = Client.objects.get(pk=obj.pk)
        data = form.cleaned_data
        request.shown_secret = registration.change(
            stored, break_glass=data.get("break_glass", False), is_active=data.get("is_active", True),
            access_token_lifetime=data["access_token_lifetime"],
            refresh_token_lifetime=data["refresh_token_lifetime"], **fields)
        _copy(stored, obj)

    def _secret_page(self, request: HttpRequest, client: Client, secret: str, why: str) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "title": f"Client secret of {client.name}",
                   "client": client, "secret": secret, "why": why, "opts": self.opts,
                   "change_url": reverse("admin:smart_auth_client_change", args=[client.pk])}
        response = TemplateResponse(request, "admin_ui/client_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "shown_secret", None)
        if secret:
            return self._secret_page(request, obj, secret, "registered")
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        secret = getattr(request, "shown_secret", None)
        if secret:
            return self._secret_page(request, obj, secret, "changed to use a client secret")
        return super().response_change(request, obj)

    def get_urls(self):
        urls = super().get_urls()
        rotate = path("<path:object_id>/rotate-secret/", self.admin_site.admin_view(self.rotate_secret_view),
                      name="smart_auth_client_rotate")
        return [rotate, *urls]

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        client = self.get_object(request, object_id)
        if client is None:
            raise Http404("No such client")
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        if request.method != "POST":
            return redirect("admin:smart_auth_client_change", client.pk)
        try:
            secret = registration.rotate_secret(client)
        except registration.RegistrationError as exc:
            messages.error(request, str(exc))
            return redirect("admin:smart_auth_client_change", client.pk)
        self.log_change(request, client, "Rotated the client secret")
        return self._secret_page(request, client, secret, "rotated; the old secret no longer works")
