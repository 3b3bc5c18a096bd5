"""Purpose of use: stated in a backend service's assertion (HL7 B2B extension) or registered
as an app's default; recorded on the token, returned by introspection; ETREAT only for
clients registered for break-the-glass.

https://hl7.org/fhir/us/udap-security/b2b.html#b2b-authorization-extension-object
"""
from __future__ import annotations

import pytest
from oauth2_provider.models import AbstractApplication, get_access_token_model

from smart_auth.access import access_for_token
from tests.smart_auth.conftest import ASSERTION_TYPE, assertion, form_post, make_client, public_jwks

pytestmark = pytest.mark.django_db
AccessToken = get_access_token_model()
SERVICE = AbstractApplication.GRANT_CLIENT_CREDENTIALS
ACT_REASON_OID = "urn:oid:2.16.840.1.113883.5.8"


def b2b(*purposes: str) -> dict:
    return {"hl7-b2b": {"version": "1", "organization_id": "https://org.example/1",
                        "purpose_of_use": list(purposes)}}


def _token(http, key, app, **claims):
    return form_post(http, "/auth/token", {
        "grant_type": "client_credentials", "scope": "system/*.rs", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(key, app.client_id, **claims)})


@pytest.fixture
def service(service_key):
    return make_client(grant=SERVICE, jwks=public_jwks(service_key), purpose_of_use="HOPERAT")


def test_the_purpose_stated_in_the_b2b_extension_is_recorded_and_introspected(client, service, service_key):
    response = _token(client, service_key, service, extensions=b2b(f"{ACT_REASON_OID}#TREAT"))
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    access = access_for_token(token)
    assert access.purpose_of_use == "TREAT" and not access.break_glass
    seen = form_post(client, "/auth/introspect", {
        "token": token, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(service_key, service.client_id)}).json()
    assert seen["active"] is True and seen["purpose_of_use"] == "TREAT" and seen["break_glass"] is False


def test_without_the_extension_the_registered_default_applies(client, service, service_key):
    token = _token(client, service_key, service).json()["access_token"]
    assert access_for_token(token).purpose_of_use == "HOPERAT"


@pytest.mark.parametrize("extensions,message", [
    (b2b(f"{ACT_REASON_OID}#TREAT", f"{ACT_REASON_OID}#HPAYMT"), "one purpose of use"),
    (b2b("http://example.org/other#TREAT"), "not the v3 ActReason code system"),
    (b2b(), "must be an array"),
    ({"hl7-b2b": "TREAT"}, "must be an object"),
    (b2b("two words"), "not an ActReason code"),
])
def test_a_malformed_b2b_purpose_is_refused(client, service, service_key, extensions, message):
    response = _token(client, service_key, service, extensions=extensions)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request" and message in response.json()["error_description"]
    assert not AccessToken.objects.exists()


def test_etreat_is_refused_to_a_client_not_registered_for_break_the_glass(client, service, service_key):
    response = _token(client, service_key, service, extensions=b2b(f"{ACT_REASON_OID}#ETREAT"))
    assert response.status_code == 400
    assert "break the glass" in response.json()["error_description"]
    assert not AccessToken.objects.exists()


def test_etreat_is_granted_and_marked_for_a_break_glass_client(client, service_key):
    glass = make_client(name="ER", grant=SERVICE, jwks=public_jwks(service_key), break_glass=True)
    response = _token(client, service_key, glass, extensions=b2b("ETREAT"))
    assert response.status_code == 200, response.content
    access = access_for_token(response.json()["access_token"])
    assert access.purpose_of_use == "ETREAT" and access.break_glass
    # Withdrawing the registration withdraws the override from tokens already issued.
    glass.client.break_glass = False
    glass.client.save()
    assert not access_for_token(response.json()["access_token"]).break_glass
