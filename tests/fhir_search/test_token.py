"""Token search: code, system|code, |code, system|, :not, :text, :of-type, booleans, :missing.

https://hl7.org/fhir/R4/search.html#token
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db

LOINC = "http://loinc.org"


def observation(*codings: dict, text: str | None = None, **extra) -> str:
    code: dict = {"coding": list(codings)} if codings else {}
    if text:
        code["text"] = text
    return store({"resourceType": "Observation", "status": "final", "code": code, **extra})


def test_code_alone_matches_any_system(search):
    a = observation({"system": LOINC, "code": "8480-6"})
    b = observation({"system": "http://other.example", "code": "8480-6"})
    observation({"system": LOINC, "code": "8462-4"})
    assert search.idset("/Observation", {"code": "8480-6"}) == {a, b}


def test_system_and_code_must_both_match(search):
    a = observation({"system": LOINC, "code": "8480-6"})
    observation({"system": "http://other.example", "code": "8480-6"})
    assert search.ids("/Observation", {"code": f"{LOINC}|8480-6"}) == [a]


def test_empty_system_matches_codes_without_a_system(search):
    no_system = observation({"code": "8480-6"})
    observation({"system": LOINC, "code": "8480-6"})
    assert search.ids("/Observation", {"code": "|8480-6"}) == [no_system]


def test_system_with_no_code_matches_any_code_of_that_system(search):
    a = observation({"system": LOINC, "code": "1"})
    b = observation({"system": LOINC, "code": "2"})
    observation({"system": "http://snomed.info/sct", "code": "1"})
    assert search.idset("/Observation", {"code": f"{LOINC}|"}) == {a, b}


def test_codes_are_case_sensitive(search):
    observation({"system": LOINC, "code": "ABC"})
    assert search.ids("/Observation", {"code": "abc"}) == []


def test_not_finds_resources_without_a_matching_code_including_those_without_any(search):
    observation({"system": LOINC, "code": "1"})
    other = observation({"system": LOINC, "code": "2"})
    uncoded = store({"resourceType": "Observation", "status": "final", "code": {"text": "free text"}})
    assert search.idset("/Observation", {"code:not": "1"}) == {other, uncoded}


def test_text_matches_display_and_concept_text_at_word_starts(search):
    headache = observation({"system": LOINC, "code": "1", "display": "Severe headache"})
    concept = observation(text="Headache, mild")
    observation({"system": LOINC, "code": "2", "display": "Fever"})
    assert search.idset("/Observation", {"code:text": "HEAD"}) == {headache, concept}
    assert search.ids("/Observation", {"code:text": "eadache"}) == []


def test_identifier_by_system_and_value(search):
    pid = store({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "123"}]})
    store({"resourceType": "Patient", "identifier": [{"system": "urn:other", "value": "123"}]})
    assert search.ids("/Patient", {"identifier": "urn:mrn|123"}) == [pid]
    assert len(search.ids("/Patient", {"identifier": "123"})) == 2


def test_of_type_matches_identifier_type_and_value(search):
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    mr = store(
        {
            "resourceType": "Patient",
            "identifier": [
                {"type": {"coding": [{"system": v2, "code": "MR"}]}, "system": "urn:mrn", "value": "42"}
            ],
        }
    )
    store(
        {
            "resourceType": "Patient",
            "identifier": [
                {"type": {"coding": [{"system": v2, "code": "DL"}]}, "system": "urn:dl", "value": "42"}
            ],
        }
    )
    assert search.ids("/Patient", {"identifier:of-type": f"{v2}|MR|42"}) == [mr]
    search.bundle("/Patient", {"identifier:of-type": "MR|42"}, status=400)


def test_boolean_tokens(search):
    active = store({"resourceType": "Patient", "active": True})
    inactive = store({"resourceType": "Patient", "active": False})
    assert search.ids("/Patient", {"active": "true"}) == [active]
    assert search.ids("/Patient", {"active": "false"}) == [inactive]


def test_code_bound_to_a_required_value_set_has_its_system(search):
    male = store({"resourceType": "Patient", "gender": "male"})
    store({"resourceType": "Patient", "gender": "female"})
    assert search.ids("/Patient", {"gender": "male"}) == [male]
    assert search.ids("/Patient", {"gender": "http://hl7.org/fhir/administrative-gender|male"}) == [male]


def test_contact_point_system_and_value(search):
    pid = store(
        {
            "resourceType": "Patient",
            "telecom": [
                {"system": "email", "value": "a@example.org"},
                {"system": "phone", "value": "555-1234"},
            ],
        }
    )
    assert search.ids("/Patient", {"email": "a@example.org"}) == [pid]
    assert search.ids("/Patient", {"phone": "a@example.org"}) == []
    assert search.ids("/Patient", {"telecom": "phone|555-1234"}) == [pid]


def test_deceased_expression_through_the_fhirpath_engine(search):
    dead = store({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"})
    store({"resourceType": "Patient", "deceasedBoolean": False})
    assert search.ids("/Patient", {"deceased": "true"}) == [dead]


def test_tag_security_and_profile_come_from_meta(search):
    tagged = store(
        {
            "resourceType": "Patient",
            "meta": {
                "tag": [{"system": "urn:tags", "code": "vip"}],
                "security": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
                ],
                "profile": ["http://example.org/StructureDefinition/my-patient"],
                "source": "http://example.org/feed",
            },
        }
    )
    store({"resourceType": "Patient"})
    assert search.ids("/Patient", {"_tag": "urn:tags|vip"}) == [tagged]
    assert search.ids("/Patient", {"_security": "R"}) == [tagged]
    assert search.ids("/Patient", {"_profile": "http://example.org/StructureDefinition/my-patient"}) == [
        tagged
    ]
    assert search.ids("/Patient", {"_source": "http://example.org/feed"}) == [tagged]


def test_id_parameter_matches_logical_ids(search):
    a = store({"resourceType": "Patient"})
    b = store({"resourceType": "Patient"})
    store({"resourceType": "Patient"})
    assert search.idset("/Patient", {"_id": f"{a},{b}"}) == {a, b}


def test_in_with_an_unknown_value_set_is_400_when_strict_and_ignored_when_lenient(search):
    observation({"system": LOINC, "code": "1"})
    search.bundle(
        "/Observation",
        {"code:in": "http://example.org/vs"},
        status=400,
        headers={"Prefer": "handling=strict"},
    )
    lenient = search.bundle("/Observation", {"code:in": "http://example.org/vs"})
    assert "code%3Ain" not in lenient["link"][0]["url"]
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "not known" in outcome[0]["resource"]["issue"][0]["diagnostics"]
