"""Reference search: Type/id, bare id, :Type, absolute URLs, :identifier, canonicals, :missing.

https://hl7.org/fhir/R4/search.html#reference
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def obs(subject: dict | None = None) -> str:
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    if subject is not None:
        body["subject"] = subject
    return store(body)


def test_type_and_id(search):
    a = obs({"reference": "Patient/1"})
    obs({"reference": "Patient/2"})
    obs({"reference": "Group/1"})
    assert search.ids("/Observation", {"subject": "Patient/1"}) == [a]
    assert search.ids("/Observation", {"patient": "Patient/1"}) == [a]


def test_bare_id_matches_any_target_type_and_type_modifier_narrows(search):
    a = obs({"reference": "Patient/1"})
    g = obs({"reference": "Group/1"})
    assert search.idset("/Observation", {"subject": "1"}) == {a, g}
    assert search.idset("/Observation", {"subject:Patient": "1"}) == {a}
    assert search.idset("/Observation", {"subject:Group": "1"}) == {g}


def test_where_resolve_is_keeps_only_that_target_type(search):
    obs({"reference": "Group/1"})
    assert search.ids("/Observation", {"patient": "1"}) == []


def test_versioned_reference_matches_its_resource(search):
    a = obs({"reference": "Patient/1/_history/3"})
    assert search.ids("/Observation", {"subject": "Patient/1"}) == [a]


def test_absolute_url_under_this_server_is_local(search):
    a = obs({"reference": "Patient/7"})
    b = obs({"reference": "http://testserver/fhir/Patient/7"})
    assert search.ids("/Observation", {"subject": "http://testserver/fhir/Patient/7"}) == [a, b]


def test_external_absolute_url_compares_as_written(search):
    ext = obs({"reference": "http://elsewhere.example/fhir/Patient/7"})
    obs({"reference": "Patient/7"})
    assert search.ids("/Observation", {"subject": "http://elsewhere.example/fhir/Patient/7"}) == [ext]


def test_identifier_modifier(search):
    a = obs({"identifier": {"system": "urn:mrn", "value": "42"}})
    obs({"identifier": {"system": "urn:other", "value": "42"}})
    assert search.ids("/Observation", {"subject:identifier": "urn:mrn|42"}) == [a]
    assert len(search.ids("/Observation", {"subject:identifier": "42"})) == 2


def test_missing(search):
    with_subject = obs({"reference": "Patient/1"})
    without = obs()
    assert search.ids("/Observation", {"subject:missing": "true"}) == [without]
    assert search.ids("/Observation", {"subject:missing": "false"}) == [with_subject]


def test_canonical_reference_with_version(search):
    qr = store(
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "questionnaire": "http://example.org/Questionnaire/phq9|2.0",
        }
    )
    assert search.ids(
        "/QuestionnaireResponse", {"questionnaire": "http://example.org/Questionnaire/phq9"}
    ) == [qr]
    assert search.ids(
        "/QuestionnaireResponse", {"questionnaire": "http://example.org/Questionnaire/phq9|2.0"}
    ) == [qr]
    assert (
        search.ids("/QuestionnaireResponse", {"questionnaire": "http://example.org/Questionnaire/phq9|3.0"})
        == []
    )


def test_type_modifier_not_allowed_by_the_parameter_is_unknown(search):
    search.bundle("/Observation", {"patient:Device": "1"}, status=400, headers={"Prefer": "handling=strict"})
