"""Who opens the console, and what each role may do.

Staff accounts with model permissions: view-only staff read every FHIR page and change
nothing; editors change resources; a bearer token never opens the console and a console
session never authorises the FHIR API. Sign-ins are throttled per account and per address
(django-axes); a second factor (TOTP) is optional, and required for superusers when
ADMIN_REQUIRE_2FA is on.
"""
from __future__ import annotations

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from admin_ui.security import CONTENT_SECURITY_POLICY
from fhir_api.store import repository
from tests.access_tokens import mint
from tests.admin_ui.conftest import PASSWORD, csrf_token, staff

pytestmark = pytest.mark.django_db

READ_PAGES = [
    "/admin/", "/admin/resource-types/", "/admin/fhir/Patient/", "/admin/fhir/Patient/pat-1/",
    "/admin/fhir/Patient/pat-1/history/", "/admin/fhir/Patient/pat-1/history/1/",
    "/admin/fhir/Patient/pat-1/history/diff/?from=1&to=2", "/admin/fhir-user-picker/?q=chal",
]
WRITES = [
    ("/admin/fhir/Patient/pat-1/edit/", {"resource": '{"resourceType":"Patient","id":"pat-1"}', "version": "2"}),
    ("/admin/fhir/Patient/add/", {"resource": '{"resourceType":"Patient"}'}),
    ("/admin/fhir/Patient/pat-1/delete/", {"version": "2"}),
    ("/admin/fhir/Patient/pat-1/history/1/restore/", {"current": "2"}),
]


def sign_in(client: Client, username: str, password: str = PASSWORD, otp: str = "", address: str = "10.0.0.1"):
    page = client.get("/admin/login/")
    return client.post("/admin/login/?next=/admin/", {
        "username": username, "password": password, "otp_token": otp, "next": "/admin/",
        "csrfmiddlewaretoken": csrf_token(page.content.decode())}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", READ_PAGES)
def test_view_only_staff_read_every_page(as_viewer, patient_v2, path):
    assert as_viewer.get(path).status_code == 200


@pytest.mark.parametrize("path, data", WRITES)
def test_view_only_staff_change_nothing(as_viewer, patient_v2, path, data):
    assert as_viewer.post(path, data).status_code == 403
    assert as_viewer.get(path).status_code in (403, 405)
    assert repository.current_version("Patient", "pat-1") == 2
    assert repository.read("Patient", "pat-1").content["name"][0]["family"] == "Chalmers-Smith"


def test_view_only_staff_see_no_edit_buttons(as_viewer, patient_v2):
    html = as_viewer.get("/admin/fhir/Patient/pat-1/history/").content.decode()
    assert "Restore this version" not in html and "Edit JSON" not in html


@pytest.mark.parametrize("path", READ_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, patient_v2, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("path", READ_PAGES[1:])
def test_staff_without_resource_rights_are_refused(client, it_manager, patient_v2, path):
    client.force_login(staff("clerk"))
    assert client.get(path).status_code == 403


def test_non_staff_cannot_sign_in(client, outsider):
    response = sign_in(client, "outsider")
    assert response.status_code == 200 and "staff account" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_sign_in_page_says_how_to_get_an_account(client):
    assert "createsuperuser" in client.get("/admin/login/").content.decode()


def test_sign_in_opens_the_console(client, admin_user):
    assert sign_in(client, "root").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_bearer_token_never_opens_the_console(client, admin_user, patient_v2):
    token = mint("user/*.cruds", user=admin_user)  # even a superuser's own token
    response = client.get("/admin/fhir/Patient/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_console_session_never_authorises_the_fhir_api(as_admin, settings, patient_v2):
    settings.FHIR_AUTH_REQUIRED = True
    assert as_admin.get("/fhir/Patient/pat-1").status_code == 401
    assert as_admin.get("/fhir/Patient").status_code == 401


def test_failed_sign_ins_lock_the_account(client, admin_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "root", "wrong", address="10.0.0.7")
    # the right password no longer opens it, even from another address
    response = sign_in(Client(), "root", address="10.9.9.9")
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()


def test_failed_sign_ins_lock_the_address(client, admin_user, viewer, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"nobody{i}", "wrong", address="10.0.0.8")
    assert sign_in(Client(), "viewer", address="10.0.0.8").status_code == 429
    assert sign_in(Client(), "viewer", address="10.0.0.9").status_code == 302


@pytest.fixture
def _no_code_throttling(settings):
    """django-otp slows down guesses after a wrong code; these tests give the right one next."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def _device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def test_staff_with_a_device_must_give_its_code(client, viewer, patient_v2, _no_code_throttling):
    device = _device(viewer)
    refused = sign_in(client, "viewer")
    assert refused.status_code == 200 and "6-digit code" in refused.content.decode()
    wrong = sign_in(client, "viewer", otp="000000" if _code(device) != "000000" else "111111")
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    assert sign_in(client, "viewer", otp=_code(device)).status_code == 302
    assert client.get("/admin/fhir/Patient/").status_code == 200


def test_a_session_without_the_second_factor_opens_nothing(client, viewer):
    _device(viewer)
    client.force_login(viewer)  # a password-only session, as if the code step were skipped
    assert client.get("/admin/").status_code == 302
    # and cannot enrol another device to get around the one it has
    assert client.get("/admin/two-factor/").status_code == 302


def test_superusers_must_enrol_when_2fa_is_required(client, admin_user, settings, _no_code_throttling):
    settings.ADMIN_REQUIRE_2FA = True
    assert sign_in(client, "root").status_code == 302
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/two-factor/"
    page = client.get("/admin/two-factor/")
    assert page.status_code == 200 and page.context["required"]
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)
    bad = client.post("/admin/two-factor/", {"token": "12"})
    assert bad.status_code == 200 and bad.context["form"].errors
    assert client.post("/admin/two-factor/", {"token": _code(device)}).status_code == 302
    assert client.get("/admin/").status_code == 200
    # the next sign-in needs the code
    fresh = Client()
    assert sign_in(fresh, "root").status_code == 200


def test_2fa_is_optional_for_staff_when_required_for_superusers(client, viewer, settings):
    settings.ADMIN_REQUIRE_2FA = True
    assert sign_in(client, "viewer").status_code == 302
    assert client.get("/admin/resource-types/").status_code == 200


def test_console_pages_carry_a_strict_policy_and_refuse_framing(as_admin):
    response = as_admin.get("/admin/")
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response["X-Frame-Options"] == "DENY"


def test_forms_need_the_csrf_token(admin_user, patient_v2):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/admin/fhir/Patient/pat-1/history/1/restore/", {"current": "2"})
    assert response.status_code == 403
    assert repository.current_version("Patient", "pat-1") == 2


def test_session_cookies_are_secure_over_tls_and_http_only(admin_user):
    client = Client()
    page = client.get("/admin/login/", secure=True)
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/",
                                             "csrfmiddlewaretoken": csrf_token(page.content.decode())},
                           secure=True)
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"]
    assert response.cookies["csrftoken"]["secure"]
    plain = Client()
    page = plain.get("/admin/login/")
    response = plain.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/",
                                            "csrfmiddlewaretoken": csrf_token(page.content.decode())})
    assert not response.cookies["sessionid"]["secure"] and response.cookies["sessionid"]["httponly"]


def test_static_files_are_served_by_the_app(client):
    response = client.get("/static/admin_ui/console.css")
    assert response.status_code == 200
    assert b"object-tabs" in b"".join(response.streaming_content)
    assert client.get("/static/admin/css/base.css").status_code == 200
