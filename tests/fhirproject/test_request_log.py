"""One structured log line per request, and the X-Request-ID that ties it to the answer."""
from __future__ import annotations

import json
import logging

import pytest

from fhirproject.logformat import JsonFormatter, TextFormatter
from tests.access_tokens import bearer, make_client, mint

pytestmark = pytest.mark.django_db


def _lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fhir.requests"]


def test_a_request_id_is_generated_and_echoed_in_the_answer_and_the_outcome(fhir):
    response = fhir.get("/Patient/nobody")
    assert response.status_code == 404
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    assert response.json()["id"] == request_id


def test_the_clients_request_id_is_kept(fhir):
    response = fhir.get("/Patient/nobody", headers={"X-Request-ID": "trace-42.a"})
    assert response["X-Request-ID"] == "trace-42.a"
    assert response.json()["id"] == "trace-42.a"


@pytest.mark.parametrize("sent", ["has spaces", "x" * 65, "new\nline", "<script>"])
def test_a_request_id_that_is_not_a_short_token_is_replaced(fhir, sent):
    response = fhir.get("/Patient/nobody", headers={"X-Request-ID": sent})
    assert response["X-Request-ID"] != sent
    assert len(response["X-Request-ID"]) == 32


def test_the_request_id_is_in_xml_outcomes_and_outcomes_django_answers(fhir, client):
    xml = fhir.get("/Patient/nobody", _format="xml", headers={"X-Request-ID": "abc-1"})
    assert b'<id value="abc-1"/>' in xml.content
    refused = client.generic("TRACE", "/fhir/Patient/1", HTTP_X_REQUEST_ID="abc-2")
    assert refused.status_code == 405
    assert refused["X-Request-ID"] == "abc-2" and refused.json()["id"] == "abc-2"
    unrouted = client.get("/fhir/not/a/fhir/url/at/all", HTTP_X_REQUEST_ID="abc-3")
    assert unrouted.status_code == 404 and unrouted.json()["id"] == "abc-3"


def test_non_fhir_answers_carry_the_request_id_too(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="probe-1")["X-Request-ID"] == "probe-1"


def test_one_line_per_request_without_query_values(fhir, caplog):
    caplog.set_level(logging.INFO, logger="fhir.requests")
    fhir.get("/Patient", family="Chalmers", birthdate="1974-12-25", headers={"X-Request-ID": "r-1"})
    [record] = _lines(caplog)
    fields = record.fields
    assert fields["request_id"] == "r-1"
    assert fields["method"] == "GET"
    assert fields["status"] == 200
    assert fields["path"] == "/fhir/Patient?family=&birthdate="
    assert fields["ms"] >= 0 and fields["db_ms"] >= 0
    assert "client_id" not in fields
    assert "Chalmers" not in record.getMessage() and "1974" not in json.dumps(fields)


@pytest.mark.auth_on
def test_the_line_names_the_smart_client_of_the_token(fhir, caplog):
    app = make_client("logged app")
    caplog.set_level(logging.INFO, logger="fhir.requests")
    token = mint("system/Patient.rs", client=app)
    fhir.get("/Patient", headers=bearer(token))
    [record] = _lines(caplog)
    assert record.fields["client_id"] == app.client_id
    assert token not in json.dumps(record.fields) and token not in record.getMessage()


def test_health_probes_are_not_logged_at_info(client, caplog):
    caplog.set_level(logging.INFO, logger="fhir.requests")
    client.get("/healthz")
    client.get("/readyz")
    client.get("/metrics")
    assert _lines(caplog) == []
    caplog.set_level(logging.DEBUG, logger="fhir.requests")
    client.get("/healthz")
    assert [r.levelno for r in _lines(caplog)] == [logging.DEBUG]


def _record(fields: dict) -> logging.LogRecord:
    record = logging.LogRecord("fhir.requests", logging.INFO, __file__, 1, "GET %s 200", ("/fhir/x",), None)
    record.fields = fields
    return record


def test_json_format_is_one_object_per_line():
    line = JsonFormatter().format(_record({"request_id": "r", "status": 200, "ms": 1.5}))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "GET /fhir/x 200"
    assert parsed["level"] == "INFO" and parsed["logger"] == "fhir.requests"
    assert parsed["request_id"] == "r" and parsed["status"] == 200 and parsed["ms"] == 1.5
    assert parsed["time"].endswith("Z")


def test_text_format_is_key_value():
    line = TextFormatter().format(_record({"request_id": "r", "path": "/fhir/Patient?name="}))
    assert line.endswith("fhir.requests: GET /fhir/x 200 request_id=r path=/fhir/Patient?name=")


def test_log_format_json_configures_the_json_formatter():
    import os
    import subprocess
    import sys

    code = ("import os, django; os.environ['DJANGO_SETTINGS_MODULE']='fhirproject.settings'; django.setup(); "
            "import logging; logging.getLogger('fhir.requests').info('hello', extra={'fields': {'status': 1}})")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "LOG_FORMAT": "json"},
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stderr.strip().splitlines()[-1])["status"] == 1
    bad = subprocess.run([sys.executable, "-c", code], env={**os.environ, "LOG_FORMAT": "yaml"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "LOG_FORMAT" in bad.stderr
