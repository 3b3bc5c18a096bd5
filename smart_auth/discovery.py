"""GET /fhir/.well-known/smart-configuration: the SMART discovery document.

https://hl7.org/fhir/smart-app-launch/conformance.html -- JSON whatever the Accept header,
public, with absolute URLs, and only what this server really does. Browser apps read it
before they have a token, so it answers CORS requests from any origin.
"""
from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from smart_auth.endpoints import endpoints, fhir_base
from smart_auth.scopes import CONTEXT_SCOPES, LEVELS

CAPABILITIES = (
    "launch-standalone", "launch-ehr",
    "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-standalone-patient", "context-ehr-patient", "context-ehr-encounter",
    "context-banner", "context-style",
    "permission-offline", "permission-online", "permission-patient", "permission-user",
    "permission-v1", "permission-v2",
    "authorize-post",
)

# The scope grammar is open (any type, any subsequence of cruds, v2 queries); the list
# names the context scopes and the wildcard clinical scopes of each level, v2 and v1.
SCOPES_SUPPORTED = (*CONTEXT_SCOPES, *(
    f"{level}/*.{perm}" for level in LEVELS for perm in ("cruds", "rs", "read", "write", "*")
))

ALLOWED_METHODS = "GET, HEAD, OPTIONS"


def smart_configuration(base: str) -> dict[str, Any]:
    """The document for a FHIR base URL."""
    urls = endpoints(base)
    return {
        "issuer": urls["issuer"],
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "management_endpoint": urls["manage"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }


def _cors(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    if request.method == "OPTIONS":
        response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        # Echo what the browser asks to send: the document reads no request header.
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            response["Access-Control-Allow-Headers"] = asked
        response["Access-Control-Max-Age"] = "86400"
    return response


@csrf_exempt
def smart_configuration_view(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Allow"] = ALLOWED_METHODS
        return _cors(response, request)
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(
            json.dumps({"error": "method_not_allowed", "error_description": f"Use {ALLOWED_METHODS}"}),
            status=405, content_type="application/json")
        response["Allow"] = ALLOWED_METHODS
        return _cors(response, request)
    body = json.dumps(smart_configuration(fhir_base(request)), indent=2)
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "public, max-age=3600"
    return _cors(response, request)
