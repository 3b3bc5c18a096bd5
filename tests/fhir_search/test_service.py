"""The service API the FHIR views and conditional interactions call (fhir_search.service).

https://hl7.org/fhir/R4/search.html and https://hl7.org/fhir/R4/http.html#cond-update
"""

from __future__ import annotations

import orjson
import pytest

from fhir_api.store.errors import BadRequest
from fhir_search.service import match, search_bundle
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def test_match_returns_logical_ids_up_to_the_limit():
    ids = [
        store({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "7"}]})
        for _ in range(3)
    ]
    assert match("Patient", [("identifier", "urn:mrn|7")], limit=2) == ids[:2]
    assert match("Patient", [("identifier", "urn:mrn|8")]) == []


def test_match_is_strict_about_parameters():
    with pytest.raises(BadRequest):
        match("Patient", [("nonsense", "1")])
    with pytest.raises(BadRequest):
        match("Patient", [("birthdate", "not-a-date")])


def test_entries_carry_the_stored_json_unparsed():
    pid = store({"resourceType": "Patient", "gender": "female"})
    bundle = search_bundle(base="http://x/fhir", path="Patient", resource_type="Patient", params=[])
    entry = bundle["entry"][0]
    assert isinstance(entry["resource"], orjson.Fragment)
    assert entry["fullUrl"] == f"http://x/fhir/Patient/{pid}"
    assert bundle["link"] == [{"relation": "self", "url": "http://x/fhir/Patient"}]


def test_an_empty_result_has_no_entry_array():
    bundle = search_bundle(
        base="http://x/fhir", path="Patient", resource_type="Patient", params=[("gender", "male")]
    )
    assert bundle["total"] == 0 and "entry" not in bundle
