"""The console's admin site: sign-in with an optional second factor, the FHIR pages, the sidebar.

Only a session opens the console (Django's admin never reads an Authorization header, so an
API bearer token is no key here), and a session is never a key to /fhir (the REST floor reads
bearer tokens only).
"""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.shortcuts import redirect
from django.urls import path

from admin_ui import navigation, twofactor
from smart_auth.audit import balp, trail

SIGN_IN_HELP = (
    "Staff accounts only. The first administrator is made on the server with "
    "`python manage.py createsuperuser`; administrators create further accounts under People."
)


def staff_actor(request) -> balp.Actor:
    """The member of staff behind a console request, as the audit trail names them."""
    from fhir_api.rest.responses import base_url

    try:
        server = base_url(request)
    except Exception:  # noqa: BLE001 -- a bad Host header must not stop the audit record
        server = ""
    return balp.Actor(address=request.META.get("REMOTE_ADDR", ""), username=request.user.get_username(),
                      server=server)


class ConsoleSignInForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        required=False, max_length=8, label="Two-factor code",
        help_text="Only if you enrolled an authenticator app.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        twofactor.check_sign_in_code(user, self.cleaned_data.get("otp_token") or "")


class ConsoleSite(admin.AdminSite):
    site_header = "FHIR server console"
    site_title = "FHIR console"
    index_title = "Dashboard"
    login_form = ConsoleSignInForm
    login_template = "admin_ui/login.html"

    def has_permission(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_staff and not twofactor.second_factor_missing(user)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def guarded(request, *args, **kwargs):
            # A superuser who must enrol a device goes to enrolment, not back to sign-in.
            user = request.user
            if user.is_active and user.is_staff and twofactor.must_enrol(user) and view != self.logout:
                return redirect("admin:two_factor")
            if not user.is_authenticated:
                return inner(request, *args, **kwargs)
            # Writes made here (resources, consents, apps) are audited with the member of staff
            # as their author, as an API write is with its token's user.
            with trail.acting(staff_actor(request)):
                return inner(request, *args, **kwargs)

        guarded.__wrapped__ = inner
        return guarded

    def login(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "sign_in_help": SIGN_IN_HELP}
        return super().login(request, extra_context)

    def get_urls(self):
        # The sections beside the resources register their pages in the sidebar on import.
        from admin_ui.consent import pages as consent_pages
        from admin_ui.audit import pages as audit_pages
        from admin_ui.resources import urls as resource_urls

        extra = [path("two-factor/", twofactor.enrol_view(self), name="two_factor")]
        return (extra + resource_urls.patterns(self) + consent_pages.patterns(self) + audit_pages.patterns(self)
                + super().get_urls())

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        return navigation.app_list_entries(request.user) + apps

    def index(self, request, extra_context=None):
        from admin_ui.resources.dashboard import dashboard

        return dashboard(self, request)
