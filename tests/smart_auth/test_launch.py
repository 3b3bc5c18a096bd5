"""EHR launch values: `manage.py smart_launch` and POST /auth/launch.

https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch -- an opaque
`launch` bound to a patient (and an encounter of that patient), stored only as its
SHA-256, short-lived, made only for the EHR side (staff, or a token that may read Patients
on the whole server).
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, set_token_value

from fhir_api.store import repository
from smart_auth.models import Client, Launch, digest
from tests.smart_auth.conftest import run

pytestmark = pytest.mark.django_db

URL = "/auth/launch"


@pytest.fixture
def encounter(patient) -> str:
    return repository.create("Encounter", {
        "resourceType": "Encounter", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient['id']}"},
    }).stored.logical_id


@pytest.fixture
def other_patient() -> str:
    return repository.create("Patient", {"resourceType": "Patient", "name": [{"family": "Other"}]}).stored.logical_id


def _expires(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the command ------------------------------------------------------------------------------

def test_smart_launch_prints_a_value_bound_to_the_patient_and_stores_only_its_digest(patient):
    out = run("smart_launch", "--patient", patient["id"])
    assert set(out) == {"launch", "patient", "expires"} and out["patient"] == patient["id"]
    assert len(out["launch"]) >= 40
    stored = Launch.objects.get()
    assert stored.value_digest == digest(out["launch"]) and stored.value_digest != out["launch"]
    assert not Launch.objects.filter(value_digest=out["launch"]).exists()
    assert (stored.patient, stored.encounter, stored.created_by) == (patient["id"], "", None)
    assert _expires(out["expires"]) == stored.expires
    assert timedelta(minutes=4) < stored.expires - timezone.now() <= timedelta(minutes=5)


def test_smart_launch_with_an_encounter_and_minutes(patient, encounter):
    out = run("smart_launch", "--patient", patient["id"], "--encounter", encounter, "--minutes", "30")
    assert out["encounter"] == encounter
    stored = Launch.objects.get()
    assert stored.encounter == encounter
    assert timedelta(minutes=29) < stored.expires - timezone.now() <= timedelta(minutes=30)


def test_each_launch_value_is_new(patient):
    first = run("smart_launch", "--patient", patient["id"])["launch"]
    second = run("smart_launch", "--patient", patient["id"])["launch"]
    assert first != second and Launch.objects.count() == 2


def _refused(cli, *args: str) -> str:
    result = cli("smart_launch", *args)
    assert result.exit_code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: "), result.stderr
    assert Launch.objects.count() == 0
    return lines[0]


def test_smart_launch_refuses_a_patient_that_does_not_exist(cli):
    assert "Patient/nobody does not exist" in _refused(cli, "--patient", "nobody")


def test_smart_launch_refuses_an_encounter_that_does_not_exist(cli, patient):
    assert "Encounter/nothing does not exist" in _refused(cli, "--patient", patient["id"], "--encounter", "nothing")


def test_smart_launch_refuses_another_patients_encounter(cli, encounter, other_patient):
    line = _refused(cli, "--patient", other_patient, "--encounter", encounter)
    assert f"Encounter/{encounter} is not an encounter of Patient/{other_patient}" in line


@pytest.mark.parametrize("minutes", ["0", "-3", "100000"])
def test_smart_launch_refuses_minutes_out_of_range(cli, patient, minutes):
    assert "minutes must be between 1 and 1440" in _refused(cli, "--patient", patient["id"], "--minutes", minutes)


# -- the endpoint -----------------------------------------------------------------------------

def test_the_route_is_named_smart_launch():
    assert reverse("smart:launch") == URL


def _user(name: str, staff: bool):
    return get_user_model().objects.create_user(username=name, password="a long password", is_staff=staff)


@pytest.fixture
def app() -> Client:
    return Client.objects.create(name="EHR integration", client_type=Client.CLIENT_CONFIDENTIAL,
                                 authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS)


def _token(app: Client, scope: str, user=None, expires_in: int = 300) -> str:
    raw = secrets.token_urlsafe(32)
    token = AccessToken(application=app, user=user, scope=scope,
                        expires=timezone.now() + timedelta(seconds=expires_in))
    set_token_value(token, raw)
    token.save()
    return raw


def _post(client, body: dict | None = None, token: str | None = None, form: bool = False):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    if form:
        return client.post(URL, body or {}, **headers)
    return client.post(URL, json.dumps(body or {}), content_type="application/json", **headers)


def test_a_staff_session_makes_a_launch(client, patient, encounter):
    staff = _user("clerk", staff=True)
    client.force_login(staff)
    response = _post(client, {"patient": patient["id"], "encounter": encounter})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert (body["patient"], body["encounter"]) == (patient["id"], encounter)
    stored = Launch.objects.get(value_digest=digest(body["launch"]))
    assert stored.created_by == staff and stored.encounter == encounter


def test_a_staff_session_may_post_a_form(client, patient):
    client.force_login(_user("clerk", staff=True))
    response = _post(client, {"patient": patient["id"], "minutes": "2"}, form=True)
    assert response.status_code == 200
    assert _expires(response.json()["expires"]) - timezone.now() <= timedelta(minutes=2)


def test_a_staff_session_needs_the_csrf_token(patient):
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(_user("clerk", staff=True))
    refused = _post(browser, {"patient": patient["id"]})
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    csrf = "a" * 32
    browser.cookies["csrftoken"] = csrf
    accepted = browser.post(URL, json.dumps({"patient": patient["id"]}), content_type="application/json",
                            HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 200, accepted.content
    assert Launch.objects.count() == 1


def test_a_session_of_someone_who_is_not_staff_is_forbidden(client, patient):
    client.force_login(_user("patient-user", staff=False))
    response = _post(client, {"patient": patient["id"]})
    assert response.status_code == 403 and response.json()["error"] == "access_denied"
    assert Launch.objects.count() == 0


def test_no_credentials_is_unauthorized(client, patient):
    response = _post(client, {"patient": patient["id"]})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Launch.objects.count() == 0


@pytest.mark.parametrize("scope", ["system/Patient.r", "system/*.rs", "system/*.*", "system/Patient.read"])
def test_a_system_token_that_may_read_patients_makes_a_launch(client, app, patient, scope):
    response = _post(client, {"patient": patient["id"]}, token=_token(app, scope))
    assert response.status_code == 200, response.content
    assert Launch.objects.get(value_digest=digest(response.json()["launch"])).created_by is None


@pytest.mark.parametrize("scope", ["system/Observation.rs", "system/Patient.s", "patient/*.rs", "user/*.rs",
                                   "launch openid"])
def test_a_token_without_system_patient_read_is_forbidden(client, app, patient, scope):
    response = _post(client, {"patient": patient["id"]}, token=_token(app, scope))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert Launch.objects.count() == 0


def test_a_staff_members_user_token_makes_a_launch(client, app, patient):
    staff = _user("clerk", staff=True)
    response = _post(client, {"patient": patient["id"]}, token=_token(app, "user/Patient.rs", user=staff))
    assert response.status_code == 200
    assert Launch.objects.get().created_by == staff


def test_a_user_token_of_someone_who_is_not_staff_is_forbidden(client, app, patient):
    response = _post(client, {"patient": patient["id"]}, token=_token(app, "user/*.rs", user=_user("p", False)))
    assert response.status_code == 403


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_a_bad_token_is_unauthorized(client, patient, header):
    response = client.post(URL, json.dumps({"patient": patient["id"]}), content_type="application/json",
                           HTTP_AUTHORIZATION=header)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_unauthorized(client, app, patient):
    response = _post(client, {"patient": patient["id"]}, token=_token(app, "system/*.rs", expires_in=-10))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_a_token_of_a_disabled_client_is_unauthorized(client, app, patient):
    token = _token(app, "system/*.rs")
    Client.objects.filter(pk=app.pk).update(is_active=False)
    assert _post(client, {"patient": patient["id"]}, token=token).status_code == 401


@pytest.mark.parametrize("body,message", [
    ({}, "patient is required"),
    ({"patient": "nobody"}, "Patient/nobody does not exist"),
    ({"patient": 12}, "patient is required"),
    ({"patient": "PATIENT", "encounter": "nothing"}, "Encounter/nothing does not exist"),
    ({"patient": "PATIENT", "minutes": "soon"}, "minutes must be a whole number"),
    ({"patient": "PATIENT", "minutes": 0}, "minutes must be between"),
])
def test_bad_requests_are_400(client, app, patient, body, message):
    body = {k: (patient["id"] if v == "PATIENT" else v) for k, v in body.items()}
    response = _post(client, body, token=_token(app, "system/*.rs"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and message in response.json()["error_description"]
    assert Launch.objects.count() == 0


def test_another_patients_encounter_is_400(client, app, encounter, other_patient):
    response = _post(client, {"patient": other_patient, "encounter": encounter}, token=_token(app, "system/*.rs"))
    assert response.status_code == 400 and "is not an encounter of" in response.json()["error_description"]


def test_a_body_that_is_not_json_is_400(client, app):
    response = client.post(URL, "{nope", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {_token(app, 'system/*.rs')}")
    assert response.status_code == 400


def test_get_is_not_allowed(client):
    response = client.get(URL)
    assert response.status_code == 405 and response["Allow"] == "POST"
