"""Property-based: no malformed resource, Bundle or search parameter gets a 5xx answer.

https://hl7.org/fhir/R4/http.html#2.21.0.4 -- a client error is a 4xx OperationOutcome. Hypothesis
generates malformed and odd input of every kind (resources with wrong JSON types, Bundles with
wrong shapes, values of every search parameter type with prefixes, modifiers and junk) and
every answer must be below 500. Bounded (max_examples, deadline) so the module runs in seconds.
"""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])

# Text that tends to break parsers: NUL and other controls, Unicode digits, surrogate-free
# astral characters, separators FHIR search gives meaning to, very long runs.
_odd_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "²", "٣", "..", ".", "|", "$", ",", "\\", ":", "urn:uuid:", "9" * 400, "1e400",
                     "ap9999-12-31", "0000", "-", "null", "[]", "{}", "\ud7ff", "𝟘", "%00", "a" * 2000]),
)
_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                          st.floats(allow_nan=False, allow_infinity=False), _odd_text)
_json_values = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)

_PATIENT_KEYS = ["id", "meta", "text", "name", "birthDate", "gender", "active", "telecom", "address",
                 "multipleBirthInteger", "multipleBirthBoolean", "extension", "_birthDate", "contained",
                 "identifier", "deceasedDateTime", "managingOrganization", "link", "resourceType"]


@st.composite
def malformed_patients(draw) -> dict:
    body = new_patient()
    for key in draw(st.lists(st.sampled_from(_PATIENT_KEYS), min_size=1, max_size=4)):
        body[key] = draw(_json_values)
    if draw(st.booleans()):
        body["resourceType"] = "Patient"
    return body


def _no_server_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:500])


@_SETTINGS
@given(body=malformed_patients())
def test_malformed_resources_never_get_a_5xx(fhir, body):
    _no_server_error(fhir.post("/Patient", body))
    _no_server_error(fhir.put("/Patient/prop-1", {**body, "id": "prop-1"}))


@_SETTINGS
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       content_type=st.sampled_from(["application/fhir+json", "application/fhir+xml", "application/json-patch+json",
                                     "text/plain", ""]),
       method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_arbitrary_bytes_as_a_body_never_get_a_5xx(fhir, raw, content_type, method):
    path = "/Patient" if method == "POST" else "/Patient/prop-2"
    _no_server_error(fhir.send(method, path, raw, content_type=content_type))


_bundle_requests = st.fixed_dictionaries({}, optional={
    "method": st.one_of(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get"]), _json_values),
    "url": st.one_of(st.sampled_from(["Patient", "Patient/x", "Patient?name=a", "Patient/x/_history/1", "",
                                      "metadata", "Patient/$validate", "Nope/1", "Patient?_count=²",
                                      "Patient/_history?_count=1000"]), _json_values),
    "ifNoneExist": st.one_of(st.sampled_from(["name=x", "", "identifier=a|b"]), _json_values),
    "ifMatch": st.one_of(st.sampled_from(['W/"1"', 'W/"abc"', "x"]), _json_values),
    "ifNoneMatch": _json_values,
    "ifModifiedSince": _json_values,
})
_bundle_entries = st.fixed_dictionaries({}, optional={
    "fullUrl": st.one_of(st.sampled_from(["urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "Patient/x"]),
                         _json_values),
    "resource": st.one_of(malformed_patients(), _json_values),
    "request": st.one_of(_bundle_requests, _json_values),
})


@_SETTINGS
@given(kind=st.one_of(st.sampled_from(["batch", "transaction"]), _json_values),
       entries=st.one_of(st.lists(st.one_of(_bundle_entries, _json_values), max_size=4), _json_values))
def test_malformed_bundles_never_get_a_5xx(fhir, kind, entries):
    response = fhir.post("", {"resourceType": "Bundle", "type": kind, "entry": entries})
    _no_server_error(response)
    if response.status_code == 200:
        for entry in response.json().get("entry", []):
            assert not entry["response"]["status"].startswith("5"), entry


# One parameter of each search parameter type (and the special and result parameters).
_PARAMS = {
    "Patient": ["name", "family", "name:exact", "name:contains", "birthdate", "gender", "gender:not", "identifier",
                "identifier:of-type", "_id", "_lastUpdated", "general-practitioner", "general-practitioner:Practitioner",
                "general-practitioner.name", "_has:Observation:patient:code", "_text", "_content", "_list",
                "_filter", "_sort", "_count", "_include", "_revinclude", "_total", "_summary", "_elements",
                "_cursor", "phone", "address-postalcode", "active", "gender:missing", "_profile", "_tag", "_security"],
    "Observation": ["value-quantity", "code-value-quantity", "date", "value-concept", "code:in", "code:below",
                    "subject", "combo-code-value-quantity", "component-value-quantity", "status"],
    "Location": ["near", "address"],
    "RiskAssessment": ["probability"],
    "ValueSet": ["url", "url:below", "version"],
}
_PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


@st.composite
def search_queries(draw) -> str:
    resource_type = draw(st.sampled_from(sorted(_PARAMS)))
    pairs = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        name = draw(st.one_of(st.sampled_from(_PARAMS[resource_type]), _odd_text))
        value = draw(st.sampled_from(_PREFIXES)) + draw(st.one_of(
            _odd_text,
            st.sampled_from(["2020", "2020-13-01", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "5.4|http://unitsofmeasure.org|mg",
                             "http://loinc.org|8867-4$gt140", "42.2|-83.6|11|km", "a|b|c", "Patient/1", "*",
                             "name eq x and (", "(" * 50, "Patient:general-practitioner", "-birthdate,name",
                             "true", "false", "accurate", "count"]),
        ))
        pairs.append(f"{quote(name, safe=':._-')}={quote(value, safe='')}")
    return f"/fhir/{resource_type}?" + "&".join(pairs)


@_SETTINGS
@given(url=search_queries(), strict=st.booleans())
def test_malformed_search_parameters_never_get_a_5xx(client, patient, url, strict):
    headers = {"HTTP_PREFER": "handling=strict"} if strict else {}
    _no_server_error(client.get(url, **headers))


@_SETTINGS
@given(logical_id=_odd_text, version=_odd_text)
def test_odd_ids_and_versions_in_urls_never_get_a_5xx(client, logical_id, version):
    lid, ver = quote(logical_id, safe=""), quote(version, safe="")
    for path in (f"/fhir/Patient/{lid}", f"/fhir/Patient/{lid}/_history/{ver}", f"/fhir/Patient/{lid}/_history"):
        _no_server_error(client.get(path))
    _no_server_error(client.get("/fhir/Patient/_history", {"_cursor": version}))
    _no_server_error(client.delete(f"/fhir/Patient/{lid}", HTTP_IF_MATCH=json.dumps(version)[:200]))
