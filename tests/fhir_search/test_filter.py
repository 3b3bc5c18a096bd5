"""The `_filter` parameter: grammar, logical operators, comparison operators per type.

https://hl7.org/fhir/R4/search_filter.html
"""

from __future__ import annotations

import pytest

from fhir_search.query.filter import And, Comparison, FilterSyntaxError, Not, Or, parse
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db

LOINC = "http://loinc.org"
STRICT = {"Prefer": "handling=strict"}


@pytest.fixture
def people():
    return {
        "peter": store({"resourceType": "Patient", "name": [{"family": "Peterson", "given": ["Peter"]}],
                        "gender": "male", "birthDate": "1970-03-04", "active": True}),
        "zoe": store({"resourceType": "Patient", "name": [{"family": "Zoëllner", "given": ["Zoë"]}],
                      "gender": "female", "birthDate": "1990-07", "active": False}),
        "sam": store({"resourceType": "Patient", "name": [{"family": "Samson", "given": ["Sam"]}],
                      "gender": "other", "birthDate": "2001-12-25"}),
    }


def filtered(search, expression: str, path: str = "/Patient") -> set[str]:
    return search.idset(path, {"_filter": expression})


# -- the grammar ---------------------------------------------------------------------------


def test_parser_reads_and_tighter_than_or_and_not_tightest():
    tree = parse('a eq 1 or not b eq "x y" and c pr true')
    assert tree == Or((Comparison("a", "eq", "1"), And((Not(Comparison("b", "eq", "x y")), Comparison("c", "pr", "true")))))


def test_parser_reads_json_escapes_in_strings():
    assert parse(r'name eq "O\"Brien \\ \u00e9"') == Comparison("name", "eq", 'O"Brien \\ é')


@pytest.mark.parametrize("expression", ['name eq', '(name eq x', 'name eq x)', 'name eq x and', 'name', '',
                                        'name eq "open', 'name xx y', 'name:exact eq x'])
def test_parser_rejects_malformed_expressions(expression):
    with pytest.raises(FilterSyntaxError):
        parse(expression)


def test_a_malformed_expression_is_a_bad_request_even_when_lenient(search, people):
    outcome = search.bundle("/Patient", {"_filter": "name eq (peter"}, status=400)
    assert outcome["issue"][0]["diagnostics"].startswith("_filter:")


# -- logical operators ---------------------------------------------------------------------


def test_and_or_not_and_parentheses(search, people):
    assert filtered(search, "gender eq male or gender eq female") == {people["peter"], people["zoe"]}
    assert filtered(search, "gender eq male and birthdate lt 1980") == {people["peter"]}
    assert filtered(search, "not (gender eq male)") == {people["zoe"], people["sam"]}
    assert filtered(search, "(gender eq male or gender eq other) and birthdate ge 2000") == {people["sam"]}


def test_filter_ands_with_the_other_parameters(search, people):
    ids = search.idset("/Patient", {"_filter": "gender ne male", "birthdate": "lt2000"})
    assert ids == {people["zoe"]}


def test_keywords_and_operators_are_case_insensitive(search, people):
    assert filtered(search, "gender EQ male OR gender Eq other") == {people["peter"], people["sam"]}


# -- string --------------------------------------------------------------------------------


def test_string_operators_ignore_case_and_accents(search, people):
    assert filtered(search, 'family eq "zoellner"') == {people["zoe"]}
    assert filtered(search, "family eq zoe") == set()  # eq is the whole value
    assert filtered(search, "family sw ZOE") == {people["zoe"]}
    assert filtered(search, "family co ers") == {people["peter"]}
    assert filtered(search, "family ew son") == {people["peter"], people["sam"]}
    assert filtered(search, "given gt r") == {people["sam"], people["zoe"]}


def test_string_ne_means_some_value_differs(search, people):
    # every patient has a given name other than "peter" except Peter, who has only that one
    assert filtered(search, "given ne peter") == {people["zoe"], people["sam"]}


def test_quoted_values_keep_their_spaces(search):
    pid = store({"resourceType": "Patient", "name": [{"family": "van der Berg"}]})
    store({"resourceType": "Patient", "name": [{"family": "van Dam"}]})
    assert filtered(search, 'family eq "van der berg"') == {pid}


# -- token ---------------------------------------------------------------------------------


def test_token_eq_and_ne_with_and_without_system(search):
    a = store({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": LOINC, "code": "8480-6"}]}})
    b = store({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://other.example", "code": "8480-6"}]}})
    assert filtered(search, "code eq 8480-6", "/Observation") == {a, b}
    assert filtered(search, f"code eq {LOINC}|8480-6", "/Observation") == {a}
    assert filtered(search, f"code ne {LOINC}|8480-6", "/Observation") == {b}


def test_token_in_and_ni_take_a_value_set(search, people):
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender"
    assert filtered(search, f"gender in {gender}") == set(people.values())
    assert filtered(search, f"gender ni {gender}") == set()
    store({"resourceType": "Patient"})  # no gender at all: none of its codes is in the set
    assert len(filtered(search, f"gender ni {gender}")) == 1


def test_token_ss_and_sb_follow_the_code_system_hierarchy(search):
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"

    def condition(code: str) -> str:
        return store({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                      "clinicalStatus": {"coding": [{"system": system, "code": code}]}})

    active, relapse, resolved = condition("active"), condition("relapse"), condition("resolved")
    assert filtered(search, f"clinical-status ss {system}|active", "/Condition") == {active, relapse}
    assert filtered(search, f"clinical-status sb {system}|relapse", "/Condition") == {active, relapse}
    assert resolved not in filtered(search, f"clinical-status ss {system}|active", "/Condition")


def test_boolean_token(search, people):
    assert filtered(search, "active eq true") == {people["peter"]}


# -- date, number, quantity ----------------------------------------------------------------


def test_date_comparisons_use_the_precision_of_both_values(search, people):
    assert filtered(search, "birthdate eq 1990") == {people["zoe"]}
    assert filtered(search, "birthdate ge 1990-07-15") == {people["zoe"], people["sam"]}
    assert filtered(search, "birthdate sa 1990-07-15") == {people["sam"]}
    assert filtered(search, "birthdate eb 1990") == {people["peter"]}
    assert filtered(search, "birthdate ne 1990-07") == {people["peter"], people["sam"]}


def test_date_po_finds_overlapping_periods(search):
    def encounter(start: str, end: str) -> str:
        return store({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                      "period": {"start": start, "end": end}})

    january = encounter("2020-01-10", "2020-01-20")
    spanning = encounter("2019-12-20", "2020-02-10")
    encounter("2020-03-01", "2020-03-05")
    assert filtered(search, "date po 2020-01", "/Encounter") == {january, spanning}


def test_quantity_and_number_comparisons(search):
    def bp(value: float) -> str:
        return store({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                      "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}})

    low, high = bp(110), bp(150)
    assert filtered(search, "value-quantity gt 120", "/Observation") == {high}
    assert filtered(search, "value-quantity le 110|http://unitsofmeasure.org|mm[Hg]", "/Observation") == {low}
    risk = store({"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/p"},
                  "prediction": [{"probabilityDecimal": 0.8}]})
    assert filtered(search, "probability ge 0.5", "/RiskAssessment") == {risk}
    assert filtered(search, "probability lt 0.5", "/RiskAssessment") == set()


# -- reference, chains, uri ----------------------------------------------------------------


def test_reference_eq_and_re(search, people):
    obs = store({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                 "subject": {"reference": f"Patient/{people['zoe']}"}})
    store({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": f"Patient/{people['sam']}"}})
    assert filtered(search, f"subject eq Patient/{people['zoe']}", "/Observation") == {obs}
    assert filtered(search, f"patient re Patient/{people['zoe']}", "/Observation") == {obs}


def test_chained_names_search_the_referenced_resources(search, people):
    obs = store({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                 "subject": {"reference": f"Patient/{people['zoe']}"}})
    store({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": f"Patient/{people['peter']}"}})
    assert filtered(search, "subject.name sw zoe", "/Observation") == {obs}
    assert filtered(search, "patient.gender eq female and status eq final", "/Observation") == {obs}


def test_uri_operators(search):
    a = store({"resourceType": "ValueSet", "status": "active", "url": "http://example.org/fhir/ValueSet/a"})
    b = store({"resourceType": "ValueSet", "status": "active", "url": "http://example.org/fhir/ValueSet/b"})
    store({"resourceType": "ValueSet", "status": "active", "url": "urn:uuid:1"})
    assert filtered(search, "url sw http://example.org/", "/ValueSet") == {a, b}
    assert filtered(search, "url ss http://example.org/fhir", "/ValueSet") == {a, b}
    assert filtered(search, "url ew /b", "/ValueSet") == {b}
    assert filtered(search, "url eq http://example.org/fhir/ValueSet/a", "/ValueSet") == {a}


# -- presence and special parameters -------------------------------------------------------


def test_pr_tests_for_any_value(search, people):
    nameless = store({"resourceType": "Patient", "gender": "male"})
    assert filtered(search, "name pr false") == {nameless}
    assert filtered(search, "name pr true") == set(people.values())


def test_id_last_updated_and_text(search, people):
    assert filtered(search, f"_id eq {people['sam']}") == {people["sam"]}
    assert filtered(search, f"_id ne {people['sam']}") == {people["peter"], people["zoe"]}
    assert filtered(search, "_lastUpdated gt 2000-01-01") == set(people.values())
    assert filtered(search, '_content co "peterson"') == {people["peter"]}


def test_system_search_with_common_parameters(search, people):
    obs = store({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                 "meta": {"tag": [{"system": "urn:t", "code": "vip"}]}})
    assert search.idset("", {"_filter": "_tag eq urn:t|vip"}) == {obs}


# -- what is refused -----------------------------------------------------------------------


def test_an_operator_that_does_not_apply_is_400_not_supported(search, people):
    outcome = search.bundle("/Patient", {"_filter": "gender gt male"}, status=400)
    issue = outcome["issue"][0]
    assert issue["code"] == "not-supported"
    assert "'gt' does not apply to gender" in issue["diagnostics"]


def test_sub_element_filters_are_400_not_supported(search):
    outcome = search.bundle("/Observation", {"_filter": "related[type eq has-member].target pr true"}, status=400)
    assert outcome["issue"][0]["code"] == "not-supported"


def test_an_invalid_value_is_a_bad_request(search, people):
    outcome = search.bundle("/Patient", {"_filter": "birthdate gt yesterday"}, status=400)
    assert "birthdate" in outcome["issue"][0]["diagnostics"]
    search.bundle("/Patient", {"_filter": "name pr maybe"}, status=400)


def test_unknown_parameters_are_400_when_strict_and_ignored_when_lenient(search, people):
    outcome = search.bundle("/Patient", {"_filter": "shoe-size gt 40"}, status=400, headers=STRICT)
    assert "shoe-size" in outcome["issue"][0]["diagnostics"]
    lenient = search.bundle("/Patient", {"_filter": "shoe-size gt 40"})
    assert "_filter" not in lenient["link"][0]["url"]
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"


def test_the_self_link_keeps_the_expression(search, people):
    bundle = search.bundle("/Patient", {"_filter": 'family eq "peterson"'})
    assert "_filter=family+eq+%22peterson%22" in bundle["link"][0]["url"]
