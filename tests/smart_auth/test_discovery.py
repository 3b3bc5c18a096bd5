"""SMART discovery: /fhir/.well-known/smart-configuration and the CapabilityStatement's security.

https://hl7.org/fhir/smart-app-launch/conformance.html -- JSON whatever the Accept header,
public, absolute URLs, CORS; the CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement-definitions.html#CapabilityStatement.rest.security)
names the SMART-on-FHIR service and the same endpoints in the oauth-uris extension.
"""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from smart_auth.scopes import check_scope

pytestmark = pytest.mark.django_db

URL = "/fhir/.well-known/smart-configuration"
ORIGIN = "http://testserver"
CAPABILITIES = [
    "launch-standalone", "launch-ehr", "client-public", "client-confidential-symmetric",
    "client-confidential-asymmetric", "sso-openid-connect", "context-standalone-patient",
    "context-ehr-patient", "context-ehr-encounter", "context-banner", "context-style",
    "permission-offline", "permission-online", "permission-patient", "permission-user",
    "permission-v1", "permission-v2", "authorize-post",
]
FIELDS = {
    "issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "introspection_endpoint",
    "revocation_endpoint", "management_endpoint", "grant_types_supported",
    "token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported",
    "scopes_supported", "response_types_supported", "code_challenge_methods_supported", "capabilities",
}


@pytest.mark.parametrize("accept", ["application/json", "application/fhir+xml", "text/html", "*/*", None])
def test_discovery_is_json_whatever_the_accept_header(client, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get(URL, **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["issuer"] == f"{ORIGIN}/auth"


def test_discovery_needs_no_token_and_lists_exactly_the_issue_fields(client, settings):
    settings.FHIR_AUTH_REQUIRED = True
    document = client.get(URL).json()
    assert set(document) == FIELDS


def test_discovery_endpoints_are_absolute_urls_under_the_issuer(client):
    document = client.get(URL).json()
    assert document["issuer"] == f"{ORIGIN}/auth"
    assert document["jwks_uri"] == f"{ORIGIN}/auth/jwks"
    assert document["authorization_endpoint"] == f"{ORIGIN}/auth/authorize"
    assert document["token_endpoint"] == f"{ORIGIN}/auth/token"
    assert document["introspection_endpoint"] == f"{ORIGIN}/auth/introspect"
    assert document["revocation_endpoint"] == f"{ORIGIN}/auth/revoke"
    assert document["management_endpoint"] == f"{ORIGIN}/admin/smart_auth/client/"


def test_discovery_states_what_the_server_supports(client):
    document = client.get(URL).json()
    assert document["grant_types_supported"] == ["authorization_code", "client_credentials", "refresh_token"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "private_key_jwt"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["capabilities"] == CAPABILITIES


def test_every_supported_scope_is_one_the_server_accepts(client):
    scopes = client.get(URL).json()["scopes_supported"]
    assert {"openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
            "patient/*.rs", "user/*.cruds", "system/*.rs", "patient/*.read"} <= set(scopes)
    for scope in scopes:
        check_scope(scope)


def test_discovery_follows_fhir_base_url(client, settings):
    settings.FHIR_BASE_URL = "https://fhir.hospital.example/fhir"
    document = client.get(URL).json()
    assert document["issuer"] == "https://fhir.hospital.example/auth"
    assert document["token_endpoint"] == "https://fhir.hospital.example/auth/token"
    assert document["management_endpoint"] == "https://fhir.hospital.example/admin/smart_auth/client/"


def test_discovery_behind_a_path_prefix(client, settings):
    settings.FHIR_BASE_URL = "https://api.hospital.example/ehr/fhir"
    assert client.get(URL).json()["authorization_endpoint"] == "https://api.hospital.example/ehr/auth/authorize"


def test_discovery_answers_cors(client):
    response = client.get(URL, HTTP_ORIGIN="https://app.example.org")
    assert response["Access-Control-Allow-Origin"] == "*"


def test_discovery_answers_a_cors_preflight(client):
    response = client.options(URL, HTTP_ORIGIN="https://app.example.org", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
                              HTTP_ACCESS_CONTROL_REQUEST_HEADERS="accept, x-requested-with")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"] == "accept, x-requested-with"


def test_discovery_refuses_writes(client):
    response = client.post(URL, "{}", content_type="application/json")
    assert response.status_code == 405 and "GET" in response["Allow"]


def test_the_management_endpoint_is_the_admins_app_page(client):
    """Django's admin starts with DOT's admin classes for the swapped Client model."""
    get_user_model().objects.create_superuser("admin", "admin@example.org", "a long password")
    client.login(username="admin", password="a long password")
    assert client.get("/admin/").status_code == 200
    management = client.get(URL).json()["management_endpoint"]
    page = client.get(management.removeprefix(ORIGIN))
    assert page.status_code == 200


# -- the CapabilityStatement --------------------------------------------------------------------

def _security(fhir) -> dict:
    response = fhir.get("/metadata")
    assert response.status_code == 200
    return response.json()["rest"][0]["security"]


def test_capability_statement_names_the_smart_service(fhir):
    security = _security(fhir)
    assert security["cors"] is True
    codings = [c for s in security["service"] for c in s["coding"]]
    assert {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR"} in codings


def test_capability_statement_oauth_uris_match_discovery(fhir, client):
    security = _security(fhir)
    (oauth,) = [e for e in security["extension"]
                if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    document = client.get(URL).json()
    assert uris == {
        "authorize": document["authorization_endpoint"],
        "token": document["token_endpoint"],
        "introspect": document["introspection_endpoint"],
        "revoke": document["revocation_endpoint"],
        "manage": document["management_endpoint"],
    }


def test_capability_statement_says_when_authentication_is_required(fhir, settings):
    settings.FHIR_AUTH_REQUIRED = True
    description = _security(fhir)["description"]
    assert "requires an OAuth 2.0 bearer token" in description and "off" not in description


def test_capability_statement_says_when_authentication_is_off(fhir, settings):
    settings.FHIR_AUTH_REQUIRED = False
    description = _security(fhir)["description"]
    assert "Authentication is off" in description and "requires" not in description


def test_capability_statement_security_in_xml(fhir):
    response = fhir.get("/metadata", _format="xml")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<cors value="true"/>' in body
    assert 'url="http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"' in body
    assert '<code value="SMART-on-FHIR"/>' in body
    # R4 order inside rest: mode, documentation, security, resource.
    assert body.index("<documentation") < body.index("<security>") < body.index("<resource>")


def test_capability_statement_says_what_consent_enforces_and_the_default(fhir, settings):
    settings.FHIR_AUTH_REQUIRED = True
    settings.FHIR_CONSENT_DEFAULT = "deny"
    description = _security(fhir)["description"]
    assert "Consent resources with scope patient-privacy" in description
    assert "the server's default is deny" in description and "ETREAT" in description
    assert "Partial:" in description
