"""Two-factor sign-in for staff: TOTP devices (django-otp), enrolled from the console.

A staff member with a confirmed device must give its code at every sign-in, and a session
that was not verified with it opens no console page. With ADMIN_REQUIRE_2FA superusers
without a device are sent to enrol one before anything else. Enrolling is open to a session
that is verified, or to a person who has no confirmed device yet: never a way around a
device someone already has.
"""
from __future__ import annotations

import base64
import io
from binascii import unhexlify

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice


def is_verified(user) -> bool:
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def second_factor_missing(user) -> bool:
    """The session lacks a second factor this user must show before the console opens."""
    if is_verified(user):
        return False
    if user_has_device(user, confirmed=True):
        return True
    return settings.ADMIN_REQUIRE_2FA and user.is_superuser


def must_enrol(user) -> bool:
    return settings.ADMIN_REQUIRE_2FA and user.is_superuser and not user_has_device(user, confirmed=True)


def check_sign_in_code(user, token: str) -> None:
    """At sign-in: a user with a device must give a code it accepts (sets user.otp_device,
    which django-otp stores in the session when the sign-in completes)."""
    if not user_has_device(user, confirmed=True):
        return
    token = token.strip()
    if not token:
        raise ValidationError("Enter the 6-digit code from your authenticator app.", code="otp_required")
    device = match_token(user, token)
    if device is None:
        raise ValidationError("That two-factor code is not valid (or was already used).", code="otp_invalid")
    user.otp_device = device


class CodeForm(forms.Form):
    token = forms.CharField(label="Code from the app", max_length=8,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


def _qr_data_uri(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def enrol_view(site):
    def view(request: HttpRequest) -> HttpResponse:
        user = request.user
        if not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), "admin:login")
        if user_has_device(user, confirmed=True) and not is_verified(user):
            return redirect_to_login(request.get_full_path(), "admin:login")
        device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)
        form = CodeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if device.verify_token(form.cleaned_data["token"]):
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                otp_login(request, device)
                return redirect("admin:index")
            form.add_error("token", "That code is not valid; check the clock of the phone and try the next code.")
        secret = base64.b32encode(unhexlify(device.key)).decode().rstrip("=")
        context = {
            **site.each_context(request),
            "title": "Two-factor sign-in",
            "form": form,
            "required": must_enrol(user),
            "has_device": user_has_device(user, confirmed=True),
            "qr": _qr_data_uri(device.config_url),
            "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
        }
        return TemplateResponse(request, "admin_ui/two_factor.html", context)

    return view
