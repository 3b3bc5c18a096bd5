"""Refresh tokens: rotation, reuse detection, client binding, online vs offline access.

https://hl7.org/fhir/smart-app-launch/app-launch.html#refresh-access-token, RFC 9700
section 4.14.2 (rotation; a reused refresh token revokes its family) and SMART's
`online_access` (ends with the sign-in session) / `offline_access` (survives it).
"""
from __future__ import annotations

import pytest
from oauth2_provider.models import get_access_token_model

from smart_auth.models import TokenContext
from tests.smart_auth.conftest import PASSWORD, exchange, form_post, get_code, make_client

AccessToken = get_access_token_model()
SCOPE = "launch/patient patient/Observation.rs openid fhirUser"


def _tokens(client, app, user, patient, extra="offline_access"):
    fields = {"patient": patient} if patient else {}
    code, verifier, _ = get_code(client, app, user, f"{SCOPE} {extra}", **fields)
    response = exchange(client, app, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()


def _refresh(client, app, refresh_token, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return form_post(client, "/auth/token", data, HTTP_AUTHORIZATION=app.basic())


def test_refresh_rotates_and_keeps_the_context(client, confidential_app, practitioner_user, patient_record):
    first = _tokens(client, confidential_app, practitioner_user, patient_record)
    response = _refresh(client, confidential_app, first["refresh_token"])
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["patient"] == patient_record and second["scope"] == f"{SCOPE} offline_access"
    assert response["Cache-Control"] == "no-store"
    context = TokenContext.objects.get()  # the old token's context went with it
    assert context.patient == patient_record and context.fhir_user == "Practitioner/doc-1"
    assert not AccessToken.objects.filter(token_checksum__in=[]).exists()
    assert AccessToken.objects.count() == 1


def test_refresh_may_narrow_but_never_widen_the_scope(client, confidential_app, practitioner_user, patient_record):
    first = _tokens(client, confidential_app, practitioner_user, patient_record)
    wider = _refresh(client, confidential_app, first["refresh_token"], scope="patient/*.cruds offline_access")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = _refresh(client, confidential_app, first["refresh_token"],
                        scope="patient/Observation.rs offline_access")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "patient/Observation.rs offline_access"


def test_reusing_an_old_refresh_token_fails_and_revokes_its_family(client, confidential_app, practitioner_user,
                                                                   patient_record):
    first = _tokens(client, confidential_app, practitioner_user, patient_record)
    second = _refresh(client, confidential_app, first["refresh_token"]).json()
    replay = _refresh(client, confidential_app, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()  # the token refreshed from it is gone too
    assert _refresh(client, confidential_app, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_token_is_bound_to_its_client(client, confidential_app, practitioner_user, patient_record):
    first = _tokens(client, confidential_app, practitioner_user, patient_record)
    other = make_client(name="Other App")
    response = _refresh(client, other, first["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_refresh_of_a_public_client_needs_only_its_client_id(client, public_app, patient_user):
    first = _tokens(client, public_app, patient_user, None)
    data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": public_app.client_id}
    response = form_post(client, "/auth/token", data)
    assert response.status_code == 200 and response.json()["patient"] == "pat-1"


def test_refresh_token_outliving_the_clients_refresh_lifetime_fails(client, practitioner_user, patient_record):
    from datetime import timedelta

    from django.utils import timezone

    app = make_client(refresh_token_lifetime=60)
    first = _tokens(client, app, practitioner_user, patient_record)
    # The refresh lifetime runs from the moment the last access token expired (sliding).
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=61))
    assert _refresh(client, app, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_no_refresh_token_without_offline_or_online_access(client, confidential_app, practitioner_user,
                                                           patient_record):
    body = _tokens(client, confidential_app, practitioner_user, patient_record, extra="")
    assert "refresh_token" not in body


@pytest.mark.parametrize("kind, survives", [("online_access", False), ("offline_access", True)])
def test_signing_out_ends_online_tokens_but_not_offline_ones(client, confidential_app, practitioner_user,
                                                             patient_record, kind, survives):
    # A real sign-in (not force_login), so the session is the one the logout ends.
    assert client.login(username="dr.careful", password=PASSWORD)
    from tests.smart_auth.conftest import authorize_params, consent, pkce_pair, redirect_query

    verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, challenge, f"{SCOPE} {kind}")
    code = redirect_query(consent(client, params, patient=patient_record))["code"]
    body = exchange(client, confidential_app, code, verifier).json()
    assert TokenContext.objects.get().online is (kind == "online_access")
    other_session = type(client)()
    other_session.force_login(practitioner_user)
    other_session.post("/auth/logout")  # another session of the same person changes nothing
    assert AccessToken.objects.count() == 1
    response = client.post("/auth/logout")
    assert response.status_code == 200 and "signed out" in response.content.decode()
    assert AccessToken.objects.exists() is survives
    refreshed = _refresh(client, confidential_app, body["refresh_token"])
    assert (refreshed.status_code == 200) is survives


def test_online_token_cannot_be_refreshed_once_its_session_is_gone(client, confidential_app, practitioner_user,
                                                                   patient_record):
    from django.contrib.sessions.models import Session

    body = _tokens(client, confidential_app, practitioner_user, patient_record, extra="online_access")
    Session.objects.all().delete()  # the session expired and was cleared, without a sign-out
    assert _refresh(client, confidential_app, body["refresh_token"]).json()["error"] == "invalid_grant"
