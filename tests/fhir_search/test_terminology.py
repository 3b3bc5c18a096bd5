"""Token terminology modifiers `:in`, `:not-in`, `:above`, `:below` and value set expansion.

https://hl7.org/fhir/R4/search.html#token, https://hl7.org/fhir/R4/valueset.html#compose
and https://hl7.org/fhir/R4/codesystem.html#hierarchy -- over the value sets and code
systems of R4 (shipped) and those stored on the server.
"""

from __future__ import annotations

import pytest

from fhir_api.store import repository
from fhir_api.store.errors import Unprocessable
from fhir_search import terminology
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CLINICAL_VS = "http://hl7.org/fhir/ValueSet/condition-clinical"
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CATEGORY_VS = "http://hl7.org/fhir/ValueSet/observation-category"
STRICT = {"Prefer": "handling=strict"}


def condition(code: str, system: str = CLINICAL) -> str:
    return store({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                  "clinicalStatus": {"coding": [{"system": system, "code": code}]}})


def observation(system: str, code: str) -> str:
    return store({"resourceType": "Observation", "status": "final",
                  "code": {"coding": [{"system": system, "code": code}]}})


def value_set(url: str, compose: dict) -> str:
    return store({"resourceType": "ValueSet", "status": "active", "url": url, "compose": compose})


# -- :in and :not-in -----------------------------------------------------------------------


def categorised(code: str, system: str = CATEGORY) -> str:
    # Observation.category's binding is only preferred, so a code of another system is stored.
    return store({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                  "category": [{"coding": [{"system": system, "code": code}]}]})


def test_in_a_shipped_value_set_of_a_whole_code_system(search):
    vital, lab = categorised("vital-signs"), categorised("laboratory")
    other = categorised("vital-signs", system="http://example.org/other")
    assert search.idset("/Observation", {"category:in": CATEGORY_VS}) == {vital, lab}
    assert other not in search.idset("/Observation", {"category:in": CATEGORY_VS})


def test_not_in_finds_resources_with_no_code_in_the_set(search):
    categorised("vital-signs")
    other = categorised("vital-signs", system="http://example.org/other")
    uncoded = store({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    assert search.idset("/Observation", {"category:not-in": CATEGORY_VS}) == {other, uncoded}


def test_a_code_outside_a_required_binding_is_not_stored_so_in_never_meets_it(search):
    with pytest.raises(Unprocessable):
        condition("active", system="http://example.org/other")


def test_in_a_stored_value_set_with_a_concept_list(search):
    value_set("http://example.org/vs/bp", {"include": [
        {"system": LOINC, "concept": [{"code": "8480-6"}, {"code": "8462-4"}]}]})
    systolic, diastolic = observation(LOINC, "8480-6"), observation(LOINC, "8462-4")
    observation(LOINC, "2339-0")
    assert search.idset("/Observation", {"code:in": "http://example.org/vs/bp"}) == {systolic, diastolic}


def test_in_accepts_a_literal_value_set_reference(search):
    vs = value_set("http://example.org/vs/one", {"include": [{"system": LOINC, "concept": [{"code": "1-1"}]}]})
    one = observation(LOINC, "1-1")
    assert search.ids("/Observation", {"code:in": f"ValueSet/{vs}"}) == [one]


def test_a_changed_stored_value_set_is_expanded_again(search):
    url = "http://example.org/vs/changing"
    vs = value_set(url, {"include": [{"system": LOINC, "concept": [{"code": "1-1"}]}]})
    one, two = observation(LOINC, "1-1"), observation(LOINC, "2-2")
    assert search.ids("/Observation", {"code:in": url}) == [one]
    repository.update("ValueSet", vs, {"resourceType": "ValueSet", "id": vs, "status": "active", "url": url,
                                       "compose": {"include": [{"system": LOINC, "concept": [{"code": "2-2"}]}]}})
    assert search.ids("/Observation", {"code:in": url}) == [two]


def test_unknown_value_sets_are_400_when_strict(search):
    observation(LOINC, "1-1")
    outcome = search.bundle("/Observation", {"code:in": "http://example.org/nope"}, status=400, headers=STRICT)
    assert "http://example.org/nope" in outcome["issue"][0]["diagnostics"]


# -- expansion -----------------------------------------------------------------------------


def test_expansion_of_an_is_a_filter_over_a_shipped_hierarchy():
    value_set("http://example.org/vs/active", {"include": [
        {"system": CLINICAL, "filter": [{"property": "concept", "op": "is-a", "value": "active"}]}]})
    codes = {code for _, code in terminology.expand("http://example.org/vs/active")}
    assert codes == {"active", "recurrence", "relapse"}


def test_expansion_of_descendent_of_and_is_not_a():
    value_set("http://example.org/vs/desc", {"include": [
        {"system": CLINICAL, "filter": [{"property": "concept", "op": "descendent-of", "value": "active"}]}]})
    value_set("http://example.org/vs/not", {"include": [
        {"system": CLINICAL, "filter": [{"property": "concept", "op": "is-not-a", "value": "active"}]}]})
    assert {c for _, c in terminology.expand("http://example.org/vs/desc")} == {"recurrence", "relapse"}
    assert {c for _, c in terminology.expand("http://example.org/vs/not")} == {"inactive", "remission", "resolved"}


def test_expansion_includes_other_value_sets_and_applies_excludes():
    value_set("http://example.org/vs/most", {
        "include": [{"valueSet": [CLINICAL_VS]}, {"system": LOINC, "concept": [{"code": "1-1"}]}],
        "exclude": [{"system": CLINICAL, "concept": [{"code": "relapse"}]}],
    })
    found = terminology.expand("http://example.org/vs/most")
    assert (LOINC, "1-1") in found and (CLINICAL, "active") in found
    assert (CLINICAL, "relapse") not in found


def test_stored_code_systems_give_hierarchies_and_whole_system_includes(search):
    system = "http://example.org/cs/colours"
    store({"resourceType": "CodeSystem", "status": "active", "url": system, "content": "complete",
           "concept": [{"code": "warm", "concept": [{"code": "red"}, {"code": "orange"}]},
                       {"code": "cold", "concept": [{"code": "blue"}]}]})
    value_set("http://example.org/vs/colours", {"include": [{"system": system}]})
    assert len(terminology.expand("http://example.org/vs/colours")) == 5
    red, blue = observation(system, "red"), observation(system, "blue")
    assert search.ids("/Observation", {"code:below": f"{system}|warm"}) == [red]
    assert search.ids("/Observation", {"code:below": f"{system}|cold"}) == [blue]


def test_unsupported_filters_are_refused(search):
    value_set("http://example.org/vs/odd", {"include": [
        {"system": CLINICAL, "filter": [{"property": "concept", "op": "exists", "value": "true"}]}]})
    with pytest.raises(terminology.TerminologyError):
        terminology.expand("http://example.org/vs/odd")
    search.bundle("/Condition", {"clinical-status:in": "http://example.org/vs/odd"}, status=400, headers=STRICT)


def test_value_sets_including_themselves_do_not_loop():
    value_set("http://example.org/vs/loop", {"include": [{"valueSet": ["http://example.org/vs/loop"]}]})
    with pytest.raises(terminology.TerminologyError):
        terminology.expand("http://example.org/vs/loop")


# -- :above and :below ---------------------------------------------------------------------


def test_below_matches_the_code_and_its_descendants(search):
    active, relapse, recurrence = condition("active"), condition("relapse"), condition("recurrence")
    condition("resolved")
    assert search.idset("/Condition", {"clinical-status:below": f"{CLINICAL}|active"}) == {
        active, relapse, recurrence}


def test_above_matches_the_code_and_its_ancestors(search):
    active, relapse = condition("active"), condition("relapse")
    condition("recurrence")
    assert search.idset("/Condition", {"clinical-status:above": f"{CLINICAL}|relapse"}) == {active, relapse}


def test_above_and_below_need_a_system_and_a_known_code_system(search):
    condition("active")
    search.bundle("/Condition", {"clinical-status:below": "active"}, status=400)
    outcome = search.bundle("/Condition", {"clinical-status:below": "http://example.org/cs|x"},
                            status=400, headers=STRICT)
    assert "not known" in outcome["issue"][0]["diagnostics"]
    # R4 ships SNOMED CT's CodeSystem without its codes: no hierarchy to follow
    outcome = search.bundle("/Condition", {"clinical-status:below": "http://snomed.info/sct|123"},
                            status=400, headers=STRICT)
    assert "does not list its codes" in outcome["issue"][0]["diagnostics"]


def test_uri_above_and_below_still_compare_paths(search):
    vs = value_set("http://example.org/fhir/ValueSet/x", {"include": [{"system": LOINC}]})
    assert search.ids("/ValueSet", {"url:below": "http://example.org/fhir"}) == [vs]
    assert search.ids("/ValueSet", {"url:above": "http://example.org/fhir/ValueSet/x/1"}) == [vs]
