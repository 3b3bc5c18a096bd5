"""The FHIR API's lean middleware stack answers exactly as the full stack would.

/fhir is served through FHIR_API_MIDDLEWARE (fhirproject/handlers.py) to save the cost of the
console's layers; these tests send the same requests through both stacks and compare the
answers, so a header that only a site layer added would show up here as a difference.
"""
from __future__ import annotations

import pytest
from django.test import Client

from fhirproject.handlers import is_api_path
from tests.conftest import FullStackClientHandler, new_patient

pytestmark = pytest.mark.django_db

# Headers that differ between any two answers.
_PER_REQUEST = {"Date", "X-Request-ID", "Last-Modified", "ETag", "Content-Length", "Location",
                "Content-Location"}


def _full_stack_client() -> Client:
    client = Client(raise_request_exception=False)
    client.handler = FullStackClientHandler(enforce_csrf_checks=False)
    return client


def _headers(response) -> dict[str, str]:
    return {k: v for k, v in response.items() if k not in _PER_REQUEST}


def _both(method: str, path: str, **extra):
    api = Client(raise_request_exception=False)
    answers = [getattr(c, method)(path, **extra) for c in (api, _full_stack_client())]
    return answers


def test_only_fhir_paths_take_the_api_stack():
    assert is_api_path("/fhir") and is_api_path("/fhir/Patient/1") and is_api_path("/fhir/metadata")
    assert not is_api_path("/fhirx") and not is_api_path("/admin/") and not is_api_path("/auth/token")
    assert not is_api_path("/")


@pytest.mark.parametrize("request_line", [
    ("get", "/fhir/Patient/{id}", {}),
    ("get", "/fhir/Patient/{id}/_history", {}),
    ("get", "/fhir/Patient", {"data": {"family": "Chalmers"}}),
    ("get", "/fhir/Patient/unknown", {}),
    ("get", "/fhir/Nonsense/1", {}),
    ("get", "/fhir/metadata", {}),
    ("delete", "/fhir/Patient/{id}/_history", {}),
    ("options", "/fhir/Patient/{id}", {}),
    ("get", "/fhir/Patient/{id}", {"HTTP_ORIGIN": "https://app.example"}),
    ("options", "/fhir/Patient", {"HTTP_ORIGIN": "https://app.example",
                                  "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST"}),
    ("get", "/fhir/Patient/{id}", {"HTTP_HOST": "evil.example"}),
    ("get", "/fhir/Patient/{id}", {"HTTP_ACCEPT": "application/xml"}),
])
def test_the_api_stack_answers_as_the_full_stack(fhir, settings, request_line):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    method, path, extra = request_line
    stored = fhir.post("/Patient", new_patient()).json()
    api, full = _both(method, path.format(id=stored["id"]), **extra)
    assert api.status_code == full.status_code
    assert _headers(api) == _headers(full)
    if api.get("Content-Type", "").startswith("application/fhir+json") and api.content:
        a, f = api.json(), full.json()
        for doc in (a, f):  # ids of generated OperationOutcomes, Bundle ids and times differ
            doc.pop("id", None), doc.pop("meta", None), doc.pop("timestamp", None)
        assert a.keys() == f.keys()


def test_an_admin_session_does_not_reach_the_api_stack(admin_client):
    """Signed in to the console, the API still sees no user: it never reads the session."""
    response = admin_client.get("/fhir/Patient")
    assert "Set-Cookie" not in response
    assert not response.has_header("Vary") or "Cookie" not in response["Vary"]
