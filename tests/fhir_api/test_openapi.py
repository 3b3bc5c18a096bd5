"""GET /fhir/openapi.json: valid OpenAPI 3.1 that says what the CapabilityStatement says; /fhir/docs."""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

pytestmark = pytest.mark.django_db

# Where each CapabilityStatement interaction lives in the document.
_TYPE_PATHS = {
    "read": ("/{t}/{{id}}", "get"), "vread": ("/{t}/{{id}}/_history/{{vid}}", "get"),
    "update": ("/{t}/{{id}}", "put"), "patch": ("/{t}/{{id}}", "patch"), "delete": ("/{t}/{{id}}", "delete"),
    "history-instance": ("/{t}/{{id}}/_history", "get"), "history-type": ("/{t}/_history", "get"),
    "create": ("/{t}", "post"), "search-type": ("/{t}", "get"),
}
_SYSTEM_PATHS = {"transaction": ("/", "post"), "batch": ("/", "post"), "search-system": ("/", "get"),
                 "history-system": ("/_history", "get")}


@pytest.fixture(scope="module")
def documents(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        client = Client()
        return client.get("/fhir/openapi.json").json(), client.get("/fhir/metadata").json()


def test_the_document_is_valid_openapi_3_1(documents):
    document, _ = documents
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_interaction_of_the_capability_statement_is_a_path(documents):
    document, statement = documents
    paths = document["paths"]
    rest = statement["rest"][0]
    assert len(rest["resource"]) == 146
    for resource in rest["resource"]:
        t = resource["type"]
        for interaction in resource["interaction"]:
            path, method = _TYPE_PATHS[interaction["code"]]
            assert method in paths[path.format(t=t)], (t, interaction["code"])
        search = {p["name"] for p in paths[f"/{t}"]["get"]["parameters"] if "name" in p}
        assert {p["name"] for p in resource["searchParam"]} <= search, t
        for op in resource.get("operation", []):
            assert f"/{t}/${op['name']}" in paths or f"/{t}/{{id}}/${op['name']}" in paths, (t, op["name"])
    for interaction in rest["interaction"]:
        path, method = _SYSTEM_PATHS[interaction["code"]]
        assert method in paths[path]
    for op in rest["operation"]:
        assert f"/${op['name']}" in paths


def test_operations_that_change_state_are_post_only(documents):
    document, _ = documents
    assert set(document["paths"]["/Patient/{id}/$meta-add"]) == {"post"}
    assert set(document["paths"]["/Patient/{id}/$everything"]) == {"get", "post"}
    assert "/Observation/$everything" not in document["paths"]


def test_metadata_needs_no_token_and_everything_else_does_when_auth_is_on(client, settings):
    settings.FHIR_AUTH_REQUIRED = True
    document = client.get("/fhir/openapi.json").json()
    assert document["security"] == [{"smart": []}]
    assert document["paths"]["/metadata"]["get"]["security"] == []
    settings.FHIR_AUTH_REQUIRED = False
    assert "security" not in client.get("/fhir/openapi.json").json()


@pytest.mark.auth_on
def test_the_document_and_the_docs_page_need_no_token(client):
    assert client.get("/fhir/openapi.json").status_code == 200
    page = client.get("/fhir/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/fhir/openapi.json" in html
    # Swagger UI comes from this server, never from the internet.
    assert "https://" not in html.replace("http://testserver", "")
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/fhir/docs/assets/{asset}" in html
        answer = client.get(f"/fhir/docs/assets/{asset}")
        assert answer.status_code == 200 and len(answer.content) > 1000
        assert answer["Cache-Control"] == "public, max-age=86400"  # no patient data: caches may keep it
    assert page["Cache-Control"] == "no-store"


def test_only_the_listed_assets_are_served(client):
    assert client.get("/fhir/docs/assets/..%2F..%2F__init__.py").status_code == 404
    assert client.get("/fhir/docs/assets/swagger-ui-bundle.js.map").status_code == 404


def test_operations_that_run_as_jobs_document_202_with_a_status_url(client):
    paths = client.get("/fhir/openapi.json").json()["paths"]
    for path in ("/$reindex", "/Patient/$reindex", "/$export", "/Patient/$export", "/Group/{id}/$export"):
        post = paths[path]["post"]
        assert "202" in post["responses"] and "200" not in post["responses"], path
        assert "Content-Location" in post["responses"]["202"]["headers"]
    assert "200" in paths["/Patient/$everything"]["get"]["responses"]
