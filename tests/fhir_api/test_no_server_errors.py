"""Inputs that answered 500 before issue 13: each class is now a 4xx OperationOutcome.

https://hl7.org/fhir/R4/http.html#2.21.0.4 (errors are OperationOutcomes), search.html#errors,
https://hl7.org/fhir/R4/search_filter.html, https://hl7.org/fhir/R4/json.html.
"""
from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def _client_error(response) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    body = json.loads(response.content)
    assert body["resourceType"] == "OperationOutcome"
    return body


@pytest.mark.parametrize("path", ["/Patient/a%00b", "/Patient/a%00b/_history", "/Patient/a%00b/_history/1"])
def test_nul_in_an_id_is_4xx(client, path):
    _client_error(client.get("/fhir" + path))


@pytest.mark.parametrize("query", ["name=a%00b", "identifier=a%00b|c", "birthdate=20%0001", "_id=a%00",
                                   "na%00me=x", "_filter=name%20eq%20a%00b"])
def test_nul_in_a_search_value_is_4xx(client, patient, query):
    _client_error(client.get("/fhir/Patient?" + query))


def test_nul_in_conditional_create_criteria_is_4xx(fhir):
    _client_error(fhir.post("/Patient", new_patient(), headers={"If-None-Exist": "name=a\x00b"}))


@pytest.mark.parametrize("value", ["ap9999-12-31", "ap0001-01-01", "sa9999-12-31T23:59:59Z", "eb0001",
                                   "ap9999", "ne9999-12-31", "le0001-01-01T00:00:00+14:00"])
def test_dates_at_the_edge_of_the_calendar_search_fine(fhir, patient, value):
    response = fhir.get("/Patient", birthdate=value)
    assert response.status_code == 200, response.content


def test_dates_beyond_the_calendar_are_400(fhir):
    _client_error(fhir.get("/Patient", birthdate="10000-01-01"))


def test_deep_filter_nesting_is_400(fhir):
    _client_error(fhir.get("/Patient", _filter="(" * 5000 + "name eq x" + ")" * 5000))
    _client_error(fhir.get("/Patient", _filter="not " * 5000 + "name eq x"))


def test_deep_has_is_400_too_costly(fhir):
    name = "_has:Observation:patient:" * 30 + "code"
    body = _client_error(fhir.get("/Patient", **{name: "x"}))
    assert body["issue"][0]["code"] == "too-costly"


def test_long_chain_is_400_too_costly(fhir):
    name = "general-practitioner" + ".organization" * 40 + ".name"
    body = _client_error(fhir.get("/Patient", **{name: "x"}))
    assert body["issue"][0]["code"] == "too-costly"


def test_deeply_nested_json_with_a_decimal_is_400(fhir):
    body = '{"resourceType":"Patient","x":' + "[" * 100000 + "1.50" + "]" * 100000 + "}"
    _client_error(fhir.post("/Patient", body))


@pytest.mark.parametrize("depth", [120, 300, 600])
def test_deeply_nested_extensions_are_4xx(fhir, depth):
    body = ('{"resourceType":"Patient","extension":[' + '{"url":"http://e.org/x","extension":[' * depth
            + '{"url":"http://e.org/x","valueDecimal":1.50}' + "]}" * depth + "]}")
    _client_error(fhir.post("/Patient", body))


@pytest.mark.parametrize("digits", [20, 400, 5000])
def test_integers_with_many_digits_are_4xx(fhir, digits):
    big = "9" * digits
    _client_error(fhir.post("/Patient", '{"resourceType":"Patient","multipleBirthInteger":' + big + "}"))


@pytest.mark.parametrize("literal", ["9" * 20, "1." + "9" * 400, "-" + "9" * 300, "0." + "0" * 5000 + "1"])
def test_decimals_with_many_digits_are_kept_exactly(fhir, literal):
    # A FHIR decimal has no size limit (datatypes.html#decimal): stored and served as written.
    body = ('{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":'
            + literal + "}}")
    response = fhir.post("/Observation", body)
    assert response.status_code == 201, response.content[:300]
    assert b'"value":' + literal.encode() + b"}" in fhir.get(f"/Observation/{response.json()['id']}").content


@pytest.mark.parametrize("literal", ["1e400", "9" * 400, "-" + "9" * 5000])
def test_decimals_beyond_the_range_of_a_double_are_400(fhir, literal):
    # The server compares and indexes numbers as doubles: beyond their range it says so.
    body = ('{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":'
            + literal + "}}")
    assert "beyond the range" in json.dumps(_client_error(fhir.post("/Observation", body)))


def test_tampered_search_cursor_is_400(fhir, patient):
    fhir.post("/Patient", new_patient())
    for token in ("garbage", base64.urlsafe_b64encode(b'{"b":1e400,"k":[],"i":1,"p":false}').decode(),
                  base64.urlsafe_b64encode(b'{"b":99999999999999999999999,"k":[],"i":1,"p":false}').decode(),
                  base64.urlsafe_b64encode(b'{"b":1,"k":[[1]],"i":1,"p":false}').decode()):
        _client_error(fhir.get("/Patient", _cursor=token))
        _client_error(fhir.get("/Patient", _cursor=token, _sort="birthdate"))


def test_tampered_history_cursor_is_400(fhir, patient):
    for token in ("99999999999999999999-1", "1-99999999999999999999999", "x-1", "²-1"):
        _client_error(fhir.get("/Patient/_history", _cursor=token))


@pytest.mark.parametrize("entry", [
    {"request": {"method": 1, "url": "Patient"}},
    {"request": {"method": "POST", "url": ["Patient"]}, "resource": {"resourceType": "Patient"}},
    {"request": {"method": "POST", "url": "Patient", "ifNoneExist": 5}, "resource": {"resourceType": "Patient"}},
    {"request": {"method": "PUT", "url": "Patient/x", "ifMatch": ["1"]}, "resource": {"resourceType": "Patient",
                                                                                      "id": "x"}},
    {"fullUrl": {"a": 1}, "request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}},
    {"request": {"method": "GET", "url": "Patient", "ifNoneMatch": 3}},
    {"request": {"method": "GET", "url": "Patient/x", "ifModifiedSince": True}},
    {"request": "GET Patient"},
    {"request": {"method": "PATCH", "url": "Patient/x"}, "resource": {"resourceType": "Binary", "data": 5}},
])
@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_non_string_values_where_a_bundle_expects_strings_are_4xx(fhir, entry, kind):
    response = fhir.post("", {"resourceType": "Bundle", "type": kind, "entry": [entry]})
    if kind == "batch" and response.status_code == 200:
        status = response.json()["entry"][0]["response"]["status"]
        assert status.startswith("4"), status
    else:
        _client_error(response)


def test_bundle_type_that_is_not_a_string_is_400(fhir):
    _client_error(fhir.post("", {"resourceType": "Bundle", "type": ["batch"], "entry": []}))
