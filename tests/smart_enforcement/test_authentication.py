"""401 for requests without a usable token; metadata stays public.

https://hl7.org/fhir/smart-app-launch/app-launch.html#access-fhir-api and RFC 6750 section 3:
a missing, unknown, expired or revoked token is 401 with `WWW-Authenticate: Bearer`.
"""
from __future__ import annotations

import pytest

from tests.access_tokens import bearer, make_client, make_user, mint

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]


def assert_401(response, error: str | None = None):
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    if error:
        assert f'error="{error}"' in response["WWW-Authenticate"]
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "login"


def test_the_capability_statement_needs_no_token(fhir):
    assert fhir.get("/metadata").status_code == 200


def test_a_request_without_a_token_is_401(fhir, world):
    assert_401(fhir.get(f"/Patient/{world['alice']}"))
    assert_401(fhir.get("/Patient"))
    assert_401(fhir.post("/Patient", {"resourceType": "Patient"}))
    assert_401(fhir.get("/_history"))
    assert_401(fhir.get(f"/Patient/{world['alice']}/$everything"))


def test_a_forged_token_is_401(fhir, world):
    assert_401(fhir.get("/Patient", headers=bearer("not-a-token")), "invalid_token")


def test_an_expired_token_is_401(fhir, world):
    token = mint("system/*.rs", expires_in=-5)
    assert_401(fhir.get("/Patient", headers=bearer(token)), "invalid_token")


def test_a_revoked_token_is_401(fhir, world):
    from oauth2_provider.models import get_access_token_model

    token = mint("system/*.rs")
    assert fhir.get("/Patient", headers=bearer(token)).status_code == 200
    for row in get_access_token_model().objects.all():
        row.revoke()
    assert_401(fhir.get("/Patient", headers=bearer(token)), "invalid_token")


def test_a_token_of_a_disabled_app_or_person_is_401(fhir, world):
    client = make_client()
    token = mint("system/*.rs", client=client)
    client.is_active = False
    client.save()
    assert_401(fhir.get("/Patient", headers=bearer(token)))
    person = make_user("gone", active=False)
    assert_401(fhir.get("/Patient", headers=bearer(mint("user/*.rs", user=person, fhir_user="Practitioner/x"))))


def test_a_token_in_the_query_string_or_form_body_is_refused(fhir, world):
    token = mint("system/*.rs")
    assert_401(fhir.client.get(f"/fhir/Patient?access_token={token}"), "invalid_request")
    response = fhir.client.post("/fhir/Patient/_search", data=f"access_token={token}",
                                content_type="application/x-www-form-urlencoded")
    assert_401(response, "invalid_request")


def test_only_the_bearer_scheme_is_accepted(fhir, world):
    token = mint("system/*.rs")
    assert_401(fhir.get("/Patient", headers={"Authorization": f"Basic {token}"}), "invalid_request")
    assert_401(fhir.get("/Patient", headers={"Authorization": "Bearer"}), "invalid_request")


def test_an_id_token_or_other_servers_token_is_not_an_access_token(fhir, world):
    # A JWT (as an id_token or another server's token would be) is unknown here.
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL290aGVyLmV4YW1wbGUvZmhpciJ9.c2ln"
    assert_401(fhir.get("/Patient", headers=bearer(jwt)), "invalid_token")


def test_a_valid_token_is_accepted_and_auth_off_needs_none(fhir, world, settings):
    assert fhir.get("/Patient", headers=bearer(mint("system/*.rs"))).status_code == 200
    settings.FHIR_AUTH_REQUIRED = False
    assert fhir.get("/Patient").status_code == 200
