"""The authorize endpoint: validation, the consent screen, the patient picker, EHR launch.

https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code and
RFC 6749 section 4.1.2.1: errors about the client or its redirect URI are shown on a page
and never redirected; every other error goes back to the app with `error` and `state`.
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from smart_auth.models import GrantContext, Launch, digest
from tests.smart_auth.conftest import (
    REDIRECT, authorize_params, consent, make_client, make_resource, make_user, pkce_pair, redirect_query,
)

SCOPE = "launch/patient patient/Observation.rs openid fhirUser"


@pytest.fixture
def signed_in(client, practitioner_user):
    client.force_login(practitioner_user)
    return client


def _challenge():
    return pkce_pair()[1]


def test_unauthenticated_person_is_sent_to_the_sign_in_page(client, confidential_app):
    response = client.get("/auth/authorize", authorize_params(confidential_app, _challenge(), SCOPE))
    assert response.status_code == 302
    assert response["Location"].startswith("/auth/login?next=/auth/authorize")


def test_screen_shows_app_name_scopes_in_plain_words_and_a_csrf_form(signed_in, confidential_app, patient_record):
    response = signed_in.get("/auth/authorize", authorize_params(confidential_app, _challenge(), SCOPE))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Growth Chart" in html
    assert "Read, search Observation resources of the patient in context" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'value="patient/Observation.rs"' in html and 'name="granted"' in html
    assert "Peter Chalmers" in html  # the practitioner picks a patient


def test_patient_picker_searches_by_name(signed_in, confidential_app, patient_record):
    make_resource("Patient", "pat-2", name=[{"family": "Zimmer", "given": ["Anna"]}])
    params = authorize_params(confidential_app, _challenge(), SCOPE, patient_search="zimm")
    html = signed_in.get("/auth/authorize", params).content.decode()
    assert "Anna Zimmer" in html
    assert "Peter Chalmers" not in html


def test_allow_redirects_with_code_and_state_and_keeps_the_context(signed_in, confidential_app, patient_record):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    query = redirect_query(consent(signed_in, params, patient=patient_record))
    assert query["state"] == params["state"] and query["code"]
    context = GrantContext.objects.get()
    assert context.patient == patient_record
    assert context.fhir_user == "Practitioner/doc-1"
    assert context.need_patient_banner is True


def test_unticked_scopes_are_not_granted(signed_in, confidential_app, patient_record):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    redirect_query(consent(signed_in, params, granted=["launch/patient", "patient/Observation.rs"],
                           patient=patient_record))
    grant = GrantContext.objects.get().grant
    assert grant.scope.split() == ["launch/patient", "patient/Observation.rs"]


def test_a_ticked_scope_that_was_not_requested_is_ignored(signed_in, confidential_app, patient_record):
    params = authorize_params(confidential_app, _challenge(), "launch/patient patient/Observation.rs")
    redirect_query(consent(signed_in, params, granted=["launch/patient", "patient/Observation.rs",
                                                       "patient/*.cruds"], patient=patient_record))
    assert GrantContext.objects.get().grant.scope.split() == ["launch/patient", "patient/Observation.rs"]


def test_deny_redirects_access_denied_with_state(signed_in, confidential_app):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    query = redirect_query(consent(signed_in, params, decision="deny"))
    assert query["error"] == "access_denied" and query["state"] == params["state"]
    assert "code" not in query


def test_allowing_no_scope_is_a_denial(signed_in, confidential_app):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    query = redirect_query(consent(signed_in, params, granted=[]))
    assert query["error"] == "access_denied"


def test_consent_without_csrf_token_is_refused(client, practitioner_user, confidential_app, patient_record):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(practitioner_user)
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    response = consent(strict, params, patient=patient_record)
    assert response.status_code == 403
    assert not GrantContext.objects.exists()


def test_picker_requires_a_patient_choice(signed_in, confidential_app, patient_record):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    response = consent(signed_in, params)
    assert response.status_code == 400
    assert "Choose the patient" in response.content.decode()
    response = consent(signed_in, params, patient="no-such-patient")
    assert response.status_code == 400
    assert not GrantContext.objects.exists()


def test_a_patient_user_gets_their_own_patient_and_cannot_pick_another(client, confidential_app, patient_user,
                                                                         patient_record):
    make_resource("Patient", "pat-2", name=[{"family": "Other"}])
    client.force_login(patient_user)
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    html = client.get("/auth/authorize", params).content.decode()
    assert 'name="patient"' not in html
    redirect_query(consent(client, params, patient="pat-2"))
    assert GrantContext.objects.get().patient == patient_record


def test_person_with_no_identity_cannot_get_patient_scopes(client, confidential_app, nobody_user, patient_record):
    client.force_login(nobody_user)
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    query = redirect_query(client.get("/auth/authorize", params))
    assert query["error"] == "invalid_scope" and query["state"] == params["state"]


def test_ehr_launch_puts_the_launch_patient_and_encounter_in_context(signed_in, confidential_app, patient_record):
    Launch.objects.create(value_digest=digest("launch-123"), patient=patient_record, encounter="enc-9",
                          expires=timezone.now() + timedelta(minutes=5))
    params = authorize_params(confidential_app, _challenge(), "launch patient/Observation.rs", launch="launch-123")
    html = signed_in.get("/auth/authorize", params).content.decode()
    assert 'name="patient"' not in html and f"Patient/{patient_record}" in html
    redirect_query(consent(signed_in, params))
    context = GrantContext.objects.get()
    assert (context.patient, context.encounter, context.need_patient_banner) == (patient_record, "enc-9", False)


@pytest.mark.parametrize("value, expires_in", [("unknown-launch", 5), ("old-launch", -1)])
def test_unknown_or_expired_launch_is_refused(signed_in, confidential_app, patient_record, value, expires_in):
    Launch.objects.create(value_digest=digest("old-launch"), patient=patient_record,
                          expires=timezone.now() + timedelta(minutes=expires_in))
    params = authorize_params(confidential_app, _challenge(), "launch patient/Observation.rs", launch=value)
    query = redirect_query(signed_in.get("/auth/authorize", params))
    assert query["error"] == "invalid_request" and "launch" in query["error_description"]


# -- refusals that go back to the app ------------------------------------------------------

def test_missing_pkce_challenge_is_refused(signed_in, confidential_app):
    params = authorize_params(confidential_app, None, SCOPE, code_challenge_method=None)
    query = redirect_query(signed_in.get("/auth/authorize", params))
    assert query["error"] == "invalid_request" and query["state"] == params["state"]


@pytest.mark.parametrize("method", ["plain", None])
def test_plain_pkce_is_refused(signed_in, confidential_app, method):
    params = authorize_params(confidential_app, "a" * 43, SCOPE, code_challenge_method=method)
    query = redirect_query(signed_in.get("/auth/authorize", params))
    assert query["error"] == "invalid_request"
    assert "S256" in query["error_description"]


def test_plain_pkce_is_refused_on_the_consent_post_too(signed_in, confidential_app, patient_record):
    params = authorize_params(confidential_app, "a" * 43, SCOPE, code_challenge_method="plain")
    query = redirect_query(consent(signed_in, params, patient=patient_record))
    assert query["error"] == "invalid_request" and not GrantContext.objects.exists()


@pytest.mark.parametrize("aud", ["http://testserver/other", "https://evil.example/fhir", None])
def test_aud_other_than_this_fhir_base_is_refused(signed_in, confidential_app, aud):
    params = authorize_params(confidential_app, _challenge(), SCOPE, aud=aud)
    query = redirect_query(signed_in.get("/auth/authorize", params))
    assert query["error"] == "invalid_request" and "aud" in query["error_description"]


def test_aud_follows_fhir_base_url_setting(signed_in, confidential_app, settings, patient_record):
    settings.FHIR_BASE_URL = "https://fhir.example.org/fhir"
    params = authorize_params(confidential_app, _challenge(), SCOPE, aud="https://fhir.example.org/fhir")
    assert signed_in.get("/auth/authorize", params).status_code == 200


@pytest.mark.parametrize("response_type", ["token", "code id_token", "code token", "id_token"])
def test_only_the_code_response_type_is_served(signed_in, confidential_app, response_type):
    params = authorize_params(confidential_app, _challenge(), SCOPE, response_type=response_type)
    response = signed_in.get("/auth/authorize", params)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query) or parse_qs(urlsplit(location).fragment)
    assert query["error"][0] in ("unsupported_response_type", "unauthorized_client")
    assert "access_token" not in location and "code=" not in location


@pytest.mark.parametrize("scope, error", [
    ("patient/Observation.rs user/Nonsense.xyz", "invalid_scope"),
    ("patient/Observation.rs telepathy", "invalid_scope"),
    ("system/Patient.rs", "invalid_scope"),
])
def test_unknown_malformed_or_system_scopes_are_refused(signed_in, confidential_app, scope, error):
    params = authorize_params(confidential_app, _challenge(), scope)
    query = redirect_query(signed_in.get("/auth/authorize", params))
    assert query["error"] == error and query["state"] == params["state"]


def test_scope_beyond_registration_is_refused(signed_in, patient_record):
    app = make_client(scopes="launch/patient patient/Observation.rs openid fhirUser")
    params = authorize_params(app, _challenge(), "launch/patient patient/*.rs")
    query = redirect_query(signed_in.get("/auth/authorize", params))
    assert query["error"] == "invalid_scope" and "registered" in query["error_description"]


def test_scope_within_registration_is_accepted(signed_in, patient_record):
    app = make_client(scopes="launch/patient patient/*.rs")
    params = authorize_params(app, _challenge(), "launch/patient patient/Observation.r")
    assert signed_in.get("/auth/authorize", params).status_code == 200


# -- refusals shown on a page, never redirected ---------------------------------------------

def test_unknown_client_gets_an_error_page(signed_in, confidential_app):
    params = authorize_params(confidential_app, _challenge(), SCOPE, client_id="who-is-this")
    response = signed_in.get("/auth/authorize", params)
    assert response.status_code == 400 and "Location" not in response
    assert "cannot sign you in" in response.content.decode()


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/callback",
    "https://app.example/callback/extra",
    "https://app.example/callback?x=1",
    "https://app.example:8443/callback",
])
def test_unregistered_redirect_uri_gets_an_error_page(signed_in, confidential_app, redirect_uri):
    params = authorize_params(confidential_app, _challenge(), SCOPE, redirect_uri=redirect_uri)
    response = signed_in.get("/auth/authorize", params)
    assert response.status_code == 400 and "Location" not in response


def test_loopback_redirect_uri_must_match_exactly_including_the_port(signed_in):
    app = make_client(redirect_uris="http://127.0.0.1:8765/cb")
    params = authorize_params(app, _challenge(), SCOPE, redirect_uri="http://127.0.0.1:9999/cb")
    assert signed_in.get("/auth/authorize", params).status_code == 400


def test_disabled_client_gets_an_error_page(signed_in):
    app = make_client(is_active=False)
    params = authorize_params(app, _challenge(), SCOPE)
    response = signed_in.get("/auth/authorize", params)
    assert response.status_code == 400 and "Location" not in response


def test_client_credentials_client_cannot_use_the_code_flow(signed_in, backend_service):
    from oauth2_provider.models import AbstractApplication

    app = make_client(grant=AbstractApplication.GRANT_CLIENT_CREDENTIALS)
    params = authorize_params(app, _challenge(), "system/*.rs", redirect_uri=None)
    response = signed_in.get("/auth/authorize", params)
    assert response.status_code == 400 and "Location" not in response


# -- POST authorization requests (SMART capability authorize-post) --------------------------

def test_app_may_post_the_authorization_request(client, practitioner_user, confidential_app, patient_record):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(practitioner_user)
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    response = strict.post("/auth/authorize", params)
    assert response.status_code == 200
    assert "Growth Chart" in response.content.decode()


def test_posted_request_survives_the_sign_in_redirect(client, confidential_app):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    response = client.post("/auth/authorize", params)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/auth/login?next=")
    assert "code_challenge" in location and "client_id" in location


def test_sign_in_page_signs_in_and_returns_to_authorize(client, practitioner_user, confidential_app, patient_record):
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    login = client.get("/auth/login", {"next": "/auth/authorize?x=1"})
    assert login.status_code == 200 and 'name="password"' in login.content.decode()
    response = client.post("/auth/login", {"username": "dr.careful", "password": "wrong", "next": "/auth/authorize"})
    assert response.status_code == 200 and "did not match" in response.content.decode()
    from tests.smart_auth.conftest import PASSWORD

    response = client.post("/auth/login", {"username": "dr.careful", "password": PASSWORD,
                                           "next": "/auth/authorize?client_id=" + params["client_id"]})
    assert response.status_code == 302 and response["Location"].startswith("/auth/authorize")


def test_staff_without_identity_may_pick_a_patient(client, confidential_app, patient_record):
    staff = make_user("admin", staff=True)
    client.force_login(staff)
    params = authorize_params(confidential_app, _challenge(), SCOPE)
    redirect_query(consent(client, params, patient=patient_record))
    context = GrantContext.objects.get()
    assert context.patient == patient_record and context.fhir_user == ""
