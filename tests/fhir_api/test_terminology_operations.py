"""The terminology operations: $expand, $lookup, $validate-code, $subsumes, $translate.

https://hl7.org/fhir/R4/terminology-service.html, valueset-operation-expand.html,
codesystem-operation-lookup.html, valueset-operation-validate-code.html,
codesystem-operation-validate-code.html, codesystem-operation-subsumes.html,
conceptmap-operation-translate.html -- over the shipped R4 code systems and stored ones,
type and instance level, GET and POST, and their errors (400, 404, 422).
"""
from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CLINICAL_VS = "http://hl7.org/fhir/ValueSet/condition-clinical"
BODY = "http://example.org/cs/body"
BODY_VS = "http://example.org/vs/limbs"


def params(**values: Any) -> dict[str, Any]:
    out = []
    for name, value in values.items():
        if isinstance(value, dict) and "resourceType" in value:
            out.append({"name": name, "resource": value})
        elif isinstance(value, dict):
            out.append({"name": name, "valueCoding": value})
        elif isinstance(value, bool):
            out.append({"name": name, "valueBoolean": value})
        elif isinstance(value, int):
            out.append({"name": name, "valueInteger": value})
        else:
            out.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": out}


def value(response, name: str) -> Any:
    assert response.status_code == 200, response.content
    for p in response.json()["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value"))
    return None


def properties(response) -> list[tuple[str, Any]]:
    out = []
    for p in response.json()["parameter"]:
        if p["name"] == "property":
            parts = {q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]}
            out.append((parts["code"], parts["value"]))
    return out


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [c["code"] for c in response.json()["expansion"].get("contains", [])]


def error(response, status: int) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["diagnostics"]


@pytest.fixture
def body_system(fhir) -> str:
    """limb > arm > (hand, elbow); limb > leg > foot; organ (retired), with designations."""
    cs = {
        "resourceType": "CodeSystem", "url": BODY, "version": "1", "name": "Body", "status": "active",
        "content": "complete", "hierarchyMeaning": "is-a",
        "property": [{"code": "side", "type": "code"}, {"code": "status", "type": "code"}],
        "concept": [
            {"code": "limb", "display": "Limb", "concept": [
                {"code": "arm", "display": "Upper limb",
                 "designation": [{"language": "de", "value": "Arm"}],
                 "property": [{"code": "side", "valueCode": "any"}],
                 "concept": [{"code": "hand", "display": "Hand"}, {"code": "elbow", "display": "Elbow joint"}]},
                {"code": "leg", "display": "Lower limb", "concept": [{"code": "foot", "display": "Foot"}]}]},
            {"code": "organ", "display": "Organ", "property": [{"code": "status", "valueCode": "retired"}]},
        ],
    }
    response = fhir.post("/CodeSystem", cs)
    assert response.status_code == 201, response.content
    vs = {"resourceType": "ValueSet", "url": BODY_VS, "status": "active", "compose": {
        "include": [{"system": BODY, "filter": [{"property": "concept", "op": "is-a", "value": "limb"}]}],
        "exclude": [{"system": BODY, "concept": [{"code": "elbow"}]}]}}
    assert fhir.post("/ValueSet", vs).status_code == 201
    return response.json()["id"]


# -- $expand -------------------------------------------------------------------------------------


def test_expand_a_shipped_value_set_by_url(fhir):
    found = codes(fhir.get("/ValueSet/$expand", url=CLINICAL_VS))
    assert set(found) == {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}


def test_expand_is_a_with_exclude_over_a_stored_hierarchy(fhir, body_system):
    response = fhir.get("/ValueSet/$expand", url=BODY_VS)
    assert sorted(codes(response)) == ["arm", "foot", "hand", "leg", "limb"]
    assert response.json()["expansion"]["total"] == 5


def test_expand_count_offset_and_filter(fhir, body_system):
    first = codes(fhir.get("/ValueSet/$expand", url=BODY_VS, count="2", offset="0"))
    second = codes(fhir.get("/ValueSet/$expand", url=BODY_VS, count="2", offset="2"))
    third = codes(fhir.get("/ValueSet/$expand", url=BODY_VS, count="2", offset="4"))
    assert len(first) == 2 and len(second) == 2 and len(third) == 1
    assert sorted(first + second + third) == ["arm", "foot", "hand", "leg", "limb"]
    assert codes(fhir.get("/ValueSet/$expand", url=BODY_VS, filter="lower")) == ["leg"]
    assert sorted(codes(fhir.get("/ValueSet/$expand", url=BODY_VS, filter="limb"))) == ["arm", "leg", "limb"]


def test_expand_filters_descendent_of_equals_in_regex_and_property(fhir, body_system):
    def expand(*filters: dict[str, str]) -> list[str]:
        vs = {"resourceType": "ValueSet", "status": "active", "compose": {
            "include": [{"system": BODY, "filter": list(filters)}]}}
        return sorted(codes(fhir.post("/ValueSet/$expand", params(valueSet=vs))))

    assert expand({"property": "concept", "op": "descendent-of", "value": "arm"}) == ["elbow", "hand"]
    assert expand({"property": "concept", "op": "=", "value": "foot"}) == ["foot"]
    assert expand({"property": "concept", "op": "in", "value": "foot,hand,nothing"}) == ["foot", "hand"]
    assert expand({"property": "code", "op": "regex", "value": "[a-f].*"}) == ["arm", "elbow", "foot"]
    assert expand({"property": "side", "op": "=", "value": "any"}) == ["arm"]
    assert expand({"property": "concept", "op": "is-a", "value": "leg"},
                  {"property": "concept", "op": "regex", "value": "f.*"}) == ["foot"]


def test_expand_active_only_and_designations(fhir, body_system):
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [{"system": BODY}]}}
    assert "organ" in codes(fhir.post("/ValueSet/$expand", params(valueSet=vs)))
    assert "organ" not in codes(fhir.post("/ValueSet/$expand", params(valueSet=vs, activeOnly=True)))
    response = fhir.get("/ValueSet/$expand", url=BODY_VS, includeDesignations="true")
    arm = next(c for c in response.json()["expansion"]["contains"] if c["code"] == "arm")
    assert arm["designation"] == [{"language": "de", "value": "Arm"}]


def test_expand_at_instance_level(fhir, body_system):
    vs_id = fhir.get("/ValueSet", url=BODY_VS).json()["entry"][0]["resource"]["id"]
    assert len(codes(fhir.get(f"/ValueSet/{vs_id}/$expand"))) == 5
    assert len(codes(fhir.post(f"/ValueSet/{vs_id}/$expand", params(count=1)))) == 1


def test_expand_errors(fhir, body_system):
    assert "not known" in error(fhir.get("/ValueSet/$expand", url="http://example.org/none"), 404)
    error(fhir.get("/ValueSet/nope/$expand"), 404)
    error(fhir.get("/ValueSet/$expand"), 400)
    error(fhir.get("/ValueSet/$expand", url=BODY_VS, count="-1"), 400)
    unknown_system = {"resourceType": "ValueSet", "status": "active",
                      "compose": {"include": [{"system": "http://example.org/unknown"}]}}
    error(fhir.post("/ValueSet/$expand", params(valueSet=unknown_system)), 404)
    snomed = {"resourceType": "ValueSet", "status": "active",
              "compose": {"include": [{"system": "http://snomed.info/sct"}]}}
    assert "does not list its codes" in error(fhir.post("/ValueSet/$expand", params(valueSet=snomed)), 422)
    odd = {"resourceType": "ValueSet", "status": "active", "compose": {
        "include": [{"system": BODY, "filter": [{"property": "concept", "op": "exists", "value": "x"}]}]}}
    error(fhir.post("/ValueSet/$expand", params(valueSet=odd)), 422)


# -- $lookup -------------------------------------------------------------------------------------


def test_lookup_display_designation_properties_parent_and_children(fhir, body_system):
    response = fhir.get("/CodeSystem/$lookup", system=BODY, code="arm")
    assert value(response, "display") == "Upper limb"
    assert value(response, "name") == "Body" and value(response, "version") == "1"
    assert set(properties(response)) == {("side", "any"), ("parent", "limb"), ("child", "hand"), ("child", "elbow")}
    designation = next(p for p in response.json()["parameter"] if p["name"] == "designation")
    assert {"name": "value", "valueString": "Arm"} in designation["part"]


def test_lookup_of_a_shipped_code_system_by_coding_over_post(fhir):
    response = fhir.post("/CodeSystem/$lookup", params(coding={"system": CLINICAL, "code": "relapse"}))
    assert value(response, "display") == "Relapse"
    assert ("parent", "active") in properties(response)


def test_lookup_at_instance_level_and_asked_properties_only(fhir, body_system):
    response = fhir.get(f"/CodeSystem/{body_system}/$lookup", code="hand", property="parent")
    assert properties(response) == [("parent", "arm")]


def test_lookup_errors(fhir, body_system):
    assert "not in the code system" in error(fhir.get("/CodeSystem/$lookup", system=BODY, code="tail"), 404)
    assert "not known" in error(fhir.get("/CodeSystem/$lookup", system="http://example.org/x", code="a"), 404)
    error(fhir.get("/CodeSystem/$lookup", system=BODY), 400)
    error(fhir.get("/CodeSystem/$lookup", code="arm"), 400)
    error(fhir.get("/CodeSystem/$lookup", system="http://snomed.info/sct", code="22298006"), 422)


# -- $validate-code ------------------------------------------------------------------------------


def test_value_set_validate_code(fhir, body_system):
    assert value(fhir.get("/ValueSet/$validate-code", url=BODY_VS, system=BODY, code="hand"), "result") is True
    response = fhir.get("/ValueSet/$validate-code", url=BODY_VS, system=BODY, code="elbow")  # excluded
    assert value(response, "result") is False and "not in the value set" in value(response, "message")
    response = fhir.get("/ValueSet/$validate-code", url=CLINICAL_VS, system=CLINICAL, code="active")
    assert value(response, "result") is True and value(response, "display") == "Active"
    wrong_display = fhir.get("/ValueSet/$validate-code", url=BODY_VS, system=BODY, code="hand", display="Paw")
    assert value(wrong_display, "result") is False


def test_value_set_validate_code_with_codeable_concept_over_post(fhir, body_system):
    concept = {"coding": [{"system": "http://other", "code": "x"}, {"system": BODY, "code": "foot"}]}
    body = {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": BODY_VS},
                                                        {"name": "codeableConcept", "valueCodeableConcept": concept}]}
    assert value(fhir.post("/ValueSet/$validate-code", body), "result") is True


def test_code_system_validate_code(fhir, body_system):
    assert value(fhir.get("/CodeSystem/$validate-code", url=BODY, code="elbow"), "result") is True
    assert value(fhir.get("/CodeSystem/$validate-code", url=BODY, code="tail"), "result") is False
    assert value(fhir.get(f"/CodeSystem/{body_system}/$validate-code", code="foot"), "result") is True


def test_validate_code_errors(fhir, body_system):
    error(fhir.get("/ValueSet/$validate-code", url="http://example.org/none", code="a"), 404)
    error(fhir.get("/ValueSet/$validate-code", url=BODY_VS), 400)
    error(fhir.get("/CodeSystem/$validate-code", url="http://example.org/none", code="a"), 404)


# -- $subsumes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "outcome"), [
    ("limb", "hand", "subsumes"), ("hand", "limb", "subsumed-by"), ("arm", "arm", "equivalent"),
    ("hand", "foot", "not-subsumed"),
])
def test_subsumes(fhir, body_system, a, b, outcome):
    assert value(fhir.get("/CodeSystem/$subsumes", system=BODY, codeA=a, codeB=b), "outcome") == outcome


def test_subsumes_with_codings_and_at_instance_level(fhir, body_system):
    body = params(codingA={"system": BODY, "code": "leg"}, codingB={"system": BODY, "code": "foot"})
    assert value(fhir.post("/CodeSystem/$subsumes", body), "outcome") == "subsumes"
    assert value(fhir.get(f"/CodeSystem/{body_system}/$subsumes", codeA="foot", codeB="leg"), "outcome") == \
        "subsumed-by"


def test_subsumes_errors(fhir, body_system):
    error(fhir.get("/CodeSystem/$subsumes", system=BODY, codeA="hand", codeB="tail"), 404)
    error(fhir.get("/CodeSystem/$subsumes", system=BODY, codeA="hand"), 400)
    error(fhir.get("/CodeSystem/$subsumes", system="http://example.org/x", codeA="a", codeB="b"), 404)


# -- $translate ----------------------------------------------------------------------------------


@pytest.fixture
def concept_map(fhir) -> str:
    cm = {"resourceType": "ConceptMap", "url": "http://example.org/cm/sex", "status": "active",
          "sourceUri": "http://example.org/vs/local-sex", "targetUri": "http://hl7.org/fhir/ValueSet/administrative-gender",
          "group": [{"source": "http://example.org/local-sex", "target": "http://hl7.org/fhir/administrative-gender",
                     "element": [{"code": "M", "target": [{"code": "male", "display": "Male", "equivalence": "equal"}]},
                                 {"code": "F", "target": [{"code": "female", "equivalence": "equal"}]},
                                 {"code": "X", "target": [{"equivalence": "unmatched"}]}]}]}
    response = fhir.post("/ConceptMap", cm)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def matches(response) -> list[tuple[str, str | None]]:
    out = []
    for p in response.json()["parameter"]:
        if p["name"] == "match":
            parts = {q["name"]: q for q in p["part"]}
            out.append((parts["equivalence"]["valueCode"], parts.get("concept", {}).get("valueCoding", {}).get("code")))
    return out


def test_translate_by_url_and_system(fhir, concept_map):
    response = fhir.get("/ConceptMap/$translate", url="http://example.org/cm/sex",
                        system="http://example.org/local-sex", code="M")
    assert value(response, "result") is True
    assert matches(response) == [("equal", "male")]


def test_translate_reverse_at_instance_level(fhir, concept_map):
    response = fhir.get(f"/ConceptMap/{concept_map}/$translate", system="http://hl7.org/fhir/administrative-gender",
                        code="female", reverse="true")
    assert matches(response) == [("equal", "F")]


def test_translate_finds_the_map_by_source_and_target(fhir, concept_map):
    body = params(coding={"system": "http://example.org/local-sex", "code": "F"},
                  source="http://example.org/vs/local-sex", target="http://hl7.org/fhir/ValueSet/administrative-gender")
    assert matches(fhir.post("/ConceptMap/$translate", body)) == [("equal", "female")]


def test_translate_without_a_match_is_result_false(fhir, concept_map):
    response = fhir.get(f"/ConceptMap/{concept_map}/$translate", system="http://example.org/local-sex", code="X")
    assert value(response, "result") is False
    response = fhir.get(f"/ConceptMap/{concept_map}/$translate", system="http://example.org/local-sex", code="Q")
    assert value(response, "result") is False and "No mapping" in value(response, "message")


def test_translate_errors(fhir, concept_map):
    error(fhir.get("/ConceptMap/nope/$translate", code="M", system="s"), 404)
    error(fhir.get("/ConceptMap/$translate", url="http://example.org/none", code="M"), 404)
    error(fhir.get(f"/ConceptMap/{concept_map}/$translate"), 400)


# -- the CapabilityStatement ---------------------------------------------------------------------


def test_capability_statement_lists_the_operations_with_their_definitions(fhir):
    rest = fhir.get("/metadata").json()["rest"][0]
    by_type = {r["type"]: {o["name"]: o["definition"] for o in r.get("operation", [])} for r in rest["resource"]}
    assert by_type["ValueSet"]["expand"] == "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"
    assert by_type["ValueSet"]["validate-code"] == "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code"
    assert by_type["CodeSystem"]["lookup"] == "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup"
    assert by_type["CodeSystem"]["subsumes"] == "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes"
    assert by_type["CodeSystem"]["validate-code"] == \
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code"
    assert by_type["ConceptMap"]["translate"] == "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate"
    assert by_type["Observation"]["lastn"] == "http://hl7.org/fhir/OperationDefinition/Observation-lastn"
