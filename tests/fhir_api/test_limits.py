"""The server's limits: each configurable, each answered with a clear OperationOutcome.

https://hl7.org/fhir/R4/http.html#general (bodies, Content-Encoding), http.html#transaction,
https://hl7.org/fhir/R4/search.html#errors, https://hl7.org/fhir/R4/http.html#patch,
https://hl7.org/fhir/R4/fhirpatch.html, https://hl7.org/fhir/R4/narrative.html#xhtml (txt-1, txt-2).
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import time
import tracemalloc
import zlib

import pytest
from django.db import connection
from django.test import RequestFactory

from fhir_api.rest.urls import urlpatterns  # noqa: F401  (routes loaded for resolve())
from fhir_api.store.models import Resource
from tests.conftest import finish_job, new_patient

pytestmark = pytest.mark.django_db


def _outcome(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = json.loads(response.content)
    assert body["resourceType"] == "OperationOutcome"
    return body


def _text(body: dict) -> str:
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


# -- request bodies ----------------------------------------------------------------------------


def test_a_body_beyond_the_limit_is_413(fhir, settings):
    settings.FHIR_MAX_BODY_BYTES = 1000
    body = new_patient(name=[{"family": "x" * 2000}])
    assert "FHIR_MAX_BODY_BYTES" in _text(_outcome(fhir.post("/Patient", body), 413))
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()


def test_a_body_beyond_djangos_default_is_accepted(fhir):
    # 3 MB: more than Django's 2.5 MiB DATA_UPLOAD_MAX_MEMORY_SIZE, far below the default limit
    body = new_patient(text={"status": "generated",
                             "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "a" * 3_000_000 + "</div>"})
    assert fhir.post("/Patient", body).status_code == 201


def test_djangos_own_body_limit_answers_413_too(fhir, settings):
    from django.core.exceptions import RequestDataTooBig

    from fhir_api.rest.responses import exception_handler

    response = exception_handler(RequestDataTooBig("too big"), {})
    assert response.status_code == 413
    assert b"OperationOutcome" in response.content


def test_a_gzip_body_is_read(client):
    raw = gzip.compress(json.dumps(new_patient()).encode())
    response = client.post("/fhir/Patient", raw, content_type="application/fhir+json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201, response.content
    assert response.json()["name"][0]["family"] == "Chalmers"


def test_a_deflate_body_is_read(client):
    raw = zlib.compress(json.dumps(new_patient()).encode())
    response = client.post("/fhir/Patient", raw, content_type="application/fhir+json",
                           HTTP_CONTENT_ENCODING="deflate")
    assert response.status_code == 201, response.content


def test_a_corrupt_gzip_body_is_400(client):
    response = client.post("/fhir/Patient", b"\x1f\x8b not gzip", content_type="application/fhir+json",
                           HTTP_CONTENT_ENCODING="gzip")
    _outcome(response, 400)


def test_an_unknown_content_encoding_is_415(client):
    response = client.post("/fhir/Patient", b"{}", content_type="application/fhir+json", HTTP_CONTENT_ENCODING="br")
    _outcome(response, 415)


def test_a_gzip_bomb_stops_at_the_limit_with_flat_memory(client, settings):
    settings.FHIR_MAX_BODY_BYTES = 1024 * 1024
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)  # 200 MB of spaces
    assert len(bomb) < 300_000
    tracemalloc.start()
    try:
        response = client.post("/fhir/Patient", bomb, content_type="application/fhir+json",
                               HTTP_CONTENT_ENCODING="gzip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "decompressed" in _text(_outcome(response, 413))
    assert peak < 8 * 1024 * 1024  # a few times the 1 MB limit, never the 200 MB


def _chunked_request(body: bytes, terminated: bool):
    """A request as gunicorn hands a chunked body over: wsgi.input, no CONTENT_LENGTH."""
    request = RequestFactory().generic("POST", "/fhir/Patient", content_type="application/fhir+json")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.META["CONTENT_TYPE"] = "application/fhir+json"
    request.META["wsgi.input"] = io.BytesIO(body)
    if terminated:
        request.META["wsgi.input_terminated"] = True
    return request


def test_a_chunked_body_is_read_when_the_server_decodes_chunks():
    from django.urls import resolve

    request = _chunked_request(json.dumps(new_patient()).encode(), terminated=True)
    match = resolve(request.path)
    response = match.func(request, *match.args, **match.kwargs)
    assert response.status_code == 201, response.content


def test_a_chunked_body_beyond_the_limit_is_413(settings):
    from django.urls import resolve

    settings.FHIR_MAX_BODY_BYTES = 100
    request = _chunked_request(json.dumps(new_patient()).encode(), terminated=True)
    match = resolve(request.path)
    _outcome(match.func(request, *match.args, **match.kwargs), 413)


def test_a_chunked_body_the_server_cannot_delimit_is_411_not_empty():
    from django.urls import resolve

    request = _chunked_request(json.dumps(new_patient()).encode(), terminated=False)
    match = resolve(request.path)
    _outcome(match.func(request, *match.args, **match.kwargs), 411)


# -- Bundles -----------------------------------------------------------------------------------


def test_a_bundle_with_too_many_entries_is_413(fhir, settings):
    settings.FHIR_MAX_BUNDLE_ENTRIES = 3
    entry = {"resource": new_patient(), "request": {"method": "POST", "url": "Patient"}}
    for kind in ("batch", "transaction"):
        response = fhir.post("", {"resourceType": "Bundle", "type": kind, "entry": [entry] * 4})
        assert "FHIR_MAX_BUNDLE_ENTRIES" in _text(_outcome(response, 413))
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()


def test_a_batch_answer_beyond_the_limit_fails_the_entries_past_it(fhir, settings):
    for _ in range(5):
        fhir.post("/Patient", new_patient())
    settings.FHIR_MAX_BUNDLE_RESPONSE_BYTES = 3000
    entry = {"request": {"method": "GET", "url": "Patient/_history?_count=5"}}
    response = fhir.post("", {"resourceType": "Bundle", "type": "batch", "entry": [entry] * 4})
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("200")
    assert statuses[-1].startswith("400")
    outcome = response.json()["entry"][-1]["response"]["outcome"]
    assert outcome["issue"][0]["code"] == "too-costly"
    assert len(response.content) < 3000 + 4000  # the failing entries carry only their outcomes


def test_a_transaction_answer_beyond_the_limit_rolls_back(fhir, settings):
    settings.FHIR_MAX_BUNDLE_RESPONSE_BYTES = 500
    entry = {"resource": new_patient(), "request": {"method": "POST", "url": "Patient"}}
    response = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 3})
    assert _outcome(response, 400)["issue"][0]["code"] == "too-costly"
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()
    minimal = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 3},
                        headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 200  # no resources in the answer: nothing to limit


# -- search --------------------------------------------------------------------------------------


def test_too_many_search_clauses_are_400_too_costly(fhir, settings):
    settings.FHIR_SEARCH_MAX_CLAUSES = 10
    response = fhir.client.get("/fhir/Patient?" + "&".join(["name=smith"] * 11))
    body = _outcome(response, 400)
    assert body["issue"][0]["code"] == "too-costly" and "FHIR_SEARCH_MAX_CLAUSES" in _text(body)
    assert fhir.client.get("/fhir/Patient?" + "&".join(["name=smith"] * 10)).status_code == 200


def test_the_default_clause_limit_stops_999_repeats(fhir):
    response = fhir.client.get("/fhir/Patient?" + "&".join(["name=smith"] * 999))
    assert _outcome(response, 400)["issue"][0]["code"] == "too-costly"


def test_chain_length_and_has_depth_follow_their_settings(fhir, settings):
    settings.FHIR_SEARCH_MAX_CHAIN = 1
    settings.FHIR_SEARCH_MAX_HAS_DEPTH = 1
    assert fhir.get("/Observation", **{"subject:Patient.name": "x"}).status_code == 200
    assert _outcome(fhir.get("/Observation", **{"subject:Patient.general-practitioner.name": "x"}), 400)
    assert fhir.get("/Patient", **{"_has:Observation:patient:code": "x"}).status_code == 200
    nested = "_has:Observation:patient:_has:Provenance:target:agent"
    assert "FHIR_SEARCH_MAX_HAS_DEPTH" in _text(_outcome(fhir.get("/Patient", **{nested: "x"}), 400))


def test_filter_depth_follows_its_setting(fhir, settings):
    settings.FHIR_SEARCH_MAX_FILTER_DEPTH = 3
    assert fhir.get("/Patient", _filter="((name eq x))").status_code == 200
    body = _outcome(fhir.get("/Patient", _filter="((((name eq x))))"), 400)
    assert "FHIR_SEARCH_MAX_FILTER_DEPTH" in _text(body)


def _slow_sql() -> str:
    if connection.vendor == "postgresql":
        return "SELECT pg_sleep(2)"
    return ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000)"
            " SELECT count(*) FROM c")


def test_search_time_limit_interrupts_a_slow_statement():
    from fhir_api.store.errors import TooCostly
    from fhir_search.query.time_limit import search_time_limit

    started = time.monotonic()
    with pytest.raises(TooCostly) as caught:
        with search_time_limit(100):
            with connection.cursor() as cursor:
                cursor.execute(_slow_sql())
    assert time.monotonic() - started < 1.5
    assert "FHIR_SEARCH_TIMEOUT_MS" in caught.value.diagnostics
    with connection.cursor() as cursor:  # the connection is usable afterwards, without the limit
        cursor.execute("SELECT 1")


def test_a_search_beyond_the_time_limit_is_400_too_costly(fhir, settings, monkeypatch):
    from fhir_search import service

    settings.FHIR_SEARCH_TIMEOUT_MS = 100

    def slow(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute(_slow_sql())

    monkeypatch.setattr(service, "_search_bundle", slow)
    body = _outcome(fhir.get("/Patient", name="x"), 400)
    assert body["issue"][0]["code"] == "too-costly"


# -- patches -------------------------------------------------------------------------------------


def test_json_patch_with_too_many_operations_is_400(fhir, patient, settings):
    settings.FHIR_PATCH_MAX_OPERATIONS = 5
    ops = [{"op": "test", "path": "/gender", "value": "male"}] * 6
    response = fhir.patch(f"/Patient/{patient['id']}", ops, content_type="application/json-patch+json")
    assert "FHIR_PATCH_MAX_OPERATIONS" in _text(_outcome(response, 400))


def test_json_patch_copies_that_double_the_resource_stop_at_the_size_limit(fhir, settings):
    settings.FHIR_PATCH_MAX_BYTES = 1024 * 1024
    created = fhir.post("/Patient", new_patient(extension=[
        {"url": "http://example.org/x", "valueString": "y" * 1000}])).json()
    ops = [{"op": "copy", "from": "/extension", "path": "/extension/-"}] * 21
    started = time.monotonic()
    response = fhir.patch(f"/Patient/{created['id']}", ops, content_type="application/json-patch+json")
    assert time.monotonic() - started < 2
    assert "FHIR_PATCH_MAX_BYTES" in _text(_outcome(response, 400))
    assert fhir.get(f"/Patient/{created['id']}").json()["meta"]["versionId"] == "1"


def _fhirpath_delete(path: str) -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": path}]}]}


def test_fhirpath_patch_regexes_run_in_linear_time(fhir):
    created = fhir.post("/Patient", new_patient(name=[{"family": "a" * 40 + "!"}, {"family": "Smith"}])).json()
    started = time.monotonic()
    response = fhir.patch(f"/Patient/{created['id']}",
                          _fhirpath_delete("Patient.name.where(family.matches('^(a+)+$'))"))
    assert time.monotonic() - started < 2  # backtracking would take days for 40 a's
    assert response.status_code == 200, response.content
    assert [n["family"] for n in response.json()["name"]] == ["a" * 40 + "!", "Smith"]
    response = fhir.patch(f"/Patient/{created['id']}", _fhirpath_delete("Patient.name.where(family.matches('^Sm'))"))
    assert [n["family"] for n in response.json()["name"]] == ["a" * 40 + "!"]


def test_fhirpath_patch_regex_the_linear_engine_cannot_run_is_422(fhir, patient):
    response = fhir.patch(f"/Patient/{patient['id']}", _fhirpath_delete(r"Patient.name.where(family.matches('(a)\\1'))"))
    _outcome(response, 422)


# -- $reindex ------------------------------------------------------------------------------------


def test_reindex_batch_size_is_capped_and_each_batch_commits(fhir, settings, monkeypatch):
    from fhir_search import reindexing

    for _ in range(5):
        fhir.post("/Patient", new_patient())
    settings.FHIR_REINDEX_MAX_BATCH = 2
    batches: list[int] = []
    real = reindexing.index_many

    def spy(items):
        batches.append(len(items))
        return real(items)

    monkeypatch.setattr(reindexing, "index_many", spy)
    response = finish_job(fhir, fhir.post("/Patient/$reindex", {"resourceType": "Parameters", "parameter": [
        {"name": "batchSize", "valueInteger": 100000}]}))
    assert response.status_code == 200, response.content
    assert batches == [2, 2, 1]


# -- narrative -----------------------------------------------------------------------------------

_DIV = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'


@pytest.mark.parametrize("inner, named", [
    ("<script>alert(1)</script>", "<script>"),
    ('<p onclick="alert(1)">x</p>', "onclick"),
    ('<img src="x.png" onerror="alert(1)"/>', "onerror"),
    ('<a href="javascript:alert(1)">x</a>', "href of <a>"),
    ('<a href=" JaVa&#x09;Script:alert(1)">x</a>', "href of <a>"),
    ('<form action="/x"><input name="q"/></form>', "<form>"),
    ('<iframe src="https://evil.example"></iframe>', "<iframe>"),
    ('<object data="x.swf"></object>', "<object>"),
    ('<p style="width: expression(alert(1))">x</p>', "style of <p>"),
    ("   ", "txt-2"),
])
def test_unsafe_narrative_is_422_naming_the_element(fhir, inner, named):
    body = new_patient(text={"status": "generated", "div": _DIV.format(inner)})
    outcome = _outcome(fhir.post("/Patient", body), 422)
    assert named in _text(outcome)
    assert outcome["issue"][0]["expression"] == ["Patient.text.div"]
    assert not Resource.objects.exclude(resource_type="AuditEvent").exists()


def test_ordinary_narrative_is_accepted(fhir):
    inner = ('<p><b>Peter</b> <a href="https://example.org/p">link</a> <a name="top"/></p>'
             '<table border="1"><tr><td style="color: red">x</td></tr></table>'
             '<img src="data:image/png;base64,iVBORw0KGgo=" alt="x"/><ul><li>one</li></ul>')
    body = new_patient(text={"status": "generated", "div": _DIV.format(inner)})
    assert fhir.post("/Patient", body).status_code == 201


def test_unsafe_narrative_in_a_contained_resource_is_refused_too(fhir):
    contained = {"resourceType": "Practitioner", "id": "p1",
                 "text": {"status": "generated", "div": _DIV.format("<script>x</script>")}}
    body = new_patient(contained=[contained], generalPractitioner=[{"reference": "#p1"}])
    _outcome(fhir.post("/Patient", body), 422)


def test_binary_patch_data_of_the_wrong_type_is_400(fhir, patient):
    entry = {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                          "data": base64.b64encode(b"not json").decode()},
             "request": {"method": "PATCH", "url": f"Patient/{patient['id']}"}}
    response = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    _outcome(response, 400)
