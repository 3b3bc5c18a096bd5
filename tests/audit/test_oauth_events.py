"""Authorization steps leave AuditEvents: tokens granted or refused, revoked, introspected,
codes issued, access denied, sign-in failed (https://profiles.ihe.net/ITI/BALP/)."""
from __future__ import annotations

import json

import pytest

from fhir_api.store.models import Resource
from tests.smart_auth.conftest import (  # noqa: F401 -- the named fixtures of the authorization server's tests
    assertion, authorize_params, backend_service, confidential_app, consent, form_post, patient_record, pkce_pair,
    practitioner_user, service_key,
)

pytestmark = pytest.mark.django_db


def _events(code: str | None = None) -> list[dict]:
    found = [json.loads(d) for d in Resource.objects.filter(resource_type="AuditEvent").order_by("id")
             .values_list("data", flat=True)]
    return [e for e in found if code is None or e["subtype"][0]["code"] == code]


def _all_text() -> str:
    return "".join(Resource.objects.filter(resource_type="AuditEvent").values_list("data", flat=True))


def _client_of(event: dict) -> str:
    agent = next(a for a in event["agent"] if a["type"]["coding"][0]["code"] == "110153")
    return agent["who"].get("identifier", {}).get("value", "")


def _token(http, client_assertion, scope="system/Patient.rs"):
    return form_post(http, "/auth/token", {
        "grant_type": "client_credentials", "scope": scope, "client_assertion": client_assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})


def test_a_backend_token_grant_is_recorded_by_token_id_never_by_value(client, backend_service, service_key):
    signed = assertion(service_key, backend_service.client_id)
    body = _token(client, signed).json()
    event = _events("token")[-1]
    assert event["type"]["code"] == "110114" and event["outcome"] == "0" and event["action"] == "E"
    assert _client_of(event) == backend_service.client_id
    token_entity = event["entity"][-1]["what"]["identifier"]
    assert token_entity["system"] == "urn:fhir-server:token" and token_entity["value"].isdigit()
    text = _all_text()
    assert body["access_token"] not in text and signed not in text


def test_a_refused_token_request_is_recorded_with_its_error(client, backend_service, service_key):
    response = _token(client, assertion(service_key, backend_service.client_id), scope="system/*.cruds")
    assert response.status_code >= 400
    event = _events("token")[-1]
    assert event["outcome"] == "4" and "invalid_scope" in event["outcomeDesc"]


def test_revocation_and_introspection_are_recorded(client, confidential_app, backend_service, service_key):
    token = _token(client, assertion(service_key, backend_service.client_id)).json()["access_token"]
    introspected = client.post("/auth/introspect", {"token": token}, HTTP_AUTHORIZATION=confidential_app.basic())
    assert introspected.status_code == 200
    revoked = client.post("/auth/revoke", {"token": token, "client_id": confidential_app.client_id},
                          HTTP_AUTHORIZATION=confidential_app.basic())
    assert revoked.status_code == 200
    assert _events("introspect")[-1]["outcome"] == "0"
    assert _client_of(_events("introspect")[-1]) == confidential_app.client_id
    assert len(_events("revoke")) == 1
    assert token not in _all_text() and confidential_app.secret not in _all_text()


def test_a_code_issued_and_a_denial_are_recorded_with_the_user(client, confidential_app, practitioner_user,
                                                               patient_record):
    client.force_login(practitioner_user)
    verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, challenge, "launch/patient patient/Patient.rs")
    consent(client, params, patient=patient_record)
    consent(client, params, decision="deny")
    issued, denied = _events("authorize"), _events("denied")
    assert len(issued) == 1 and issued[0]["outcome"] == "0"
    user = next(a for a in issued[0]["agent"] if a.get("requestor"))
    assert user["who"] == {"reference": "Practitioner/doc-1"}
    assert len(denied) == 1 and denied[0]["outcome"] == "4" and "access_denied" in denied[0]["outcomeDesc"]


def test_a_failed_sign_in_is_recorded_without_the_password(client, practitioner_user):
    client.post("/auth/login", {"username": "dr.careful", "password": "guess-123"})
    event = _events("110122")[-1]
    assert event["type"]["code"] == "110114" and event["outcome"] == "4"
    user = next(a for a in event["agent"] if a.get("requestor"))
    assert user["who"]["identifier"]["value"] == "dr.careful"
    assert "guess-123" not in _all_text()


def test_an_admin_change_is_recorded(admin_client):
    from django.contrib.auth import get_user_model

    response = admin_client.post("/admin/auth/user/add/", {
        "username": "newbie", "password1": "pw-Xy7!long-enough", "password2": "pw-Xy7!long-enough",
        "usable_password": "true", "fhir_user-TOTAL_FORMS": "1", "fhir_user-INITIAL_FORMS": "0",
        "fhir_user-MIN_NUM_FORMS": "0", "fhir_user-MAX_NUM_FORMS": "1", "fhir_user-0-fhir_user": ""})
    assert response.status_code in (200, 302)
    assert get_user_model().objects.filter(username="newbie").exists()
    event = _events("admin-add")[-1]
    assert event["type"]["code"] == "110113" and event["action"] == "C"
    assert event["entity"][0]["what"]["identifier"]["system"] == "urn:fhir-server:admin:auth.user"
    assert "pw-Xy7" not in _all_text()
