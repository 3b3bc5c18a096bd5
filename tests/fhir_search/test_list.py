"""`_list`: the resources that are entries of a List.

https://hl7.org/fhir/R4/search.html#list
"""

from __future__ import annotations

import pytest

from fhir_api.store import repository
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def test_list_finds_the_entries_of_that_list(search):
    a = store({"resourceType": "Patient"})
    b = store({"resourceType": "Patient"})
    store({"resourceType": "Patient"})
    lid = store({"resourceType": "List", "status": "current", "mode": "working",
                 "entry": [{"item": {"reference": f"Patient/{a}"}}, {"item": {"reference": f"Patient/{b}"}}]})
    store({"resourceType": "List", "status": "current", "mode": "working"})
    assert search.idset("/Patient", {"_list": lid}) == {a, b}
    assert search.idset("/Patient", {"_list": f"List/{lid}"}) == {a, b}


def test_list_entries_of_other_types_do_not_match(search):
    pid = store({"resourceType": "Patient"})
    obs = store({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    lid = store({"resourceType": "List", "status": "current", "mode": "working",
                 "entry": [{"item": {"reference": f"Patient/{pid}"}}, {"item": {"reference": f"Observation/{obs}"}}]})
    assert search.ids("/Observation", {"_list": lid}) == [obs]
    assert search.idset("", {"_list": lid}) == {pid, obs}


def test_a_deleted_list_has_no_entries(search):
    pid = store({"resourceType": "Patient"})
    lid = store({"resourceType": "List", "status": "current", "mode": "working",
                 "entry": [{"item": {"reference": f"Patient/{pid}"}}]})
    repository.delete("List", lid)
    assert search.ids("/Patient", {"_list": lid}) == []


def test_functional_lists_are_not_supported(search):
    outcome = search.bundle("/Patient", {"_list": "$current-allergies"}, status=400)
    assert outcome["issue"][0]["code"] == "not-supported"
