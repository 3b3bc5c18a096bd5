"""URI search: exact, :below, :above.

https://hl7.org/fhir/R4/search.html#uri
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def value_set(url: str) -> str:
    return store({"resourceType": "ValueSet", "status": "active", "url": url})


def test_uri_matches_exactly(search):
    a = value_set("http://acme.org/fhir/ValueSet/123")
    value_set("http://acme.org/fhir/ValueSet/1234")
    assert search.ids("/ValueSet", {"url": "http://acme.org/fhir/ValueSet/123"}) == [a]


def test_below_matches_the_uri_and_everything_under_it(search):
    a = value_set("http://acme.org/fhir/ValueSet/123")
    b = value_set("http://acme.org/fhir/ValueSet/456")
    value_set("http://other.org/fhir/ValueSet/123")
    assert search.idset("/ValueSet", {"url:below": "http://acme.org/fhir/"}) == {a, b}


def test_above_matches_the_uri_and_its_ancestors(search):
    root = value_set("http://acme.org/fhir")
    vs = value_set("http://acme.org/fhir/ValueSet/123")
    value_set("http://acme.org/fhir/ValueSet/1234")
    found = search.idset("/ValueSet", {"url:above": "http://acme.org/fhir/ValueSet/123/_history/5"})
    assert found == {root, vs}
