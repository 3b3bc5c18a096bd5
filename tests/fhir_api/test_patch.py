"""JSON Patch and FHIRPath Patch applied to plain dicts, no database.

https://hl7.org/fhir/R4/http.html#patch (JSON Patch, RFC 6902 / RFC 6901) and
https://hl7.org/fhir/R4/fhirpatch.html (FHIRPath Patch).
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_api.store.errors import BadRequest, Unprocessable
from fhir_api.store.patch import apply_fhirpath_patch, apply_json_patch


@pytest.fixture
def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"system": "http://example.org/mrn", "value": "1"},
            {"system": "http://example.org/ssn", "value": "2"},
        ],
        "name": [
            {
                "use": "official",
                "family": "Chalmers",
                "given": ["Peter", "James"],
                "_given": [None, {"id": "g2"}],  # the second given name carries an id
            },
            {"use": "usual", "given": ["Jim"]},
        ],
        "telecom": [
            {"system": "phone", "value": "111", "use": "home"},
            {"system": "phone", "value": "222", "use": "work"},
        ],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": {
            "extension": [{"url": "http://example.org/time", "valueDateTime": "1974-12-25T14:35:45"}]
        },
        "extension": [{"url": "http://example.org/eye", "valueString": "blue"}],
    }


def operation(op_type: str, path: str, **parts: Any) -> dict[str, Any]:
    """One `operation` parameter; `value` is given as the value part's own members."""
    part: list[dict[str, Any]] = [
        {"name": "type", "valueCode": op_type},
        {"name": "path", "valueString": path},
    ]
    if "name" in parts:
        part.append({"name": "name", "valueString": parts["name"]})
    if "value" in parts:
        part.append({"name": "value", **parts["value"]})
    for key in ("index", "source", "destination"):
        if key in parts:
            part.append({"name": key, "valueInteger": parts[key]})
    return {"name": "operation", "part": part}


def fhirpatch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


# -- JSON Patch -------------------------------------------------------------------------


def test_json_patch_replace_and_add_member(patient):
    result = apply_json_patch(patient, [
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "add", "path": "/active", "value": True},
    ])
    assert result["gender"] == "female" and result["active"] is True


def test_json_patch_append_with_dash(patient):
    result = apply_json_patch(patient, [{"op": "add", "path": "/name/0/given/-", "value": "Jim"}])
    assert result["name"][0]["given"] == ["Peter", "James", "Jim"]


def test_json_patch_add_at_index_inserts(patient):
    result = apply_json_patch(patient, [{"op": "add", "path": "/name/0/given/0", "value": "Pete"}])
    assert result["name"][0]["given"] == ["Pete", "Peter", "James"]


def test_json_patch_add_at_length_appends_but_past_it_fails(patient):
    assert apply_json_patch(patient, [{"op": "add", "path": "/name/2", "value": {"text": "x"}}])["name"][2]
    with pytest.raises(Unprocessable):
        apply_json_patch(patient, [{"op": "add", "path": "/name/3", "value": {"text": "x"}}])


def test_json_patch_remove_from_array(patient):
    result = apply_json_patch(patient, [{"op": "remove", "path": "/telecom/0"}])
    assert result["telecom"] == [{"system": "phone", "value": "222", "use": "work"}]


def test_json_patch_remove_missing_member_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_json_patch(patient, [{"op": "remove", "path": "/deceasedBoolean"}])


def test_json_patch_replace_missing_member_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_json_patch(patient, [{"op": "replace", "path": "/maritalStatus", "value": {"text": "x"}}])


def test_json_patch_move_and_copy(patient):
    result = apply_json_patch(patient, [
        {"op": "copy", "from": "/name/0/family", "path": "/name/1/family"},
        {"op": "move", "from": "/telecom/1", "path": "/telecom/0"},
    ])
    assert result["name"][1]["family"] == "Chalmers"
    assert [t["use"] for t in result["telecom"]] == ["work", "home"]


def test_json_patch_move_into_own_child_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_json_patch(patient, [{"op": "move", "from": "/name", "path": "/name/0/x"}])


def test_json_patch_test_passing_changes_nothing(patient):
    ops = [{"op": "test", "path": "/name/0/given", "value": ["Peter", "James"]}]
    assert apply_json_patch(patient, ops) == patient


def test_json_patch_test_failing_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_json_patch(patient, [
            {"op": "replace", "path": "/gender", "value": "female"},
            {"op": "test", "path": "/birthDate", "value": "2000-01-01"},
        ])


def test_json_patch_test_tells_booleans_from_numbers():
    with pytest.raises(Unprocessable):
        apply_json_patch({"resourceType": "Basic", "n": 1}, [{"op": "test", "path": "/n", "value": True}])
    assert apply_json_patch({"resourceType": "Basic", "n": 1}, [{"op": "test", "path": "/n", "value": 1.0}])


def test_json_patch_pointer_escapes():
    doc = {"resourceType": "Basic", "a/b": 1, "m~n": 2}
    result = apply_json_patch(doc, [
        {"op": "replace", "path": "/a~1b", "value": 10},
        {"op": "replace", "path": "/m~0n", "value": 20},
    ])
    assert result["a/b"] == 10 and result["m~n"] == 20


@pytest.mark.parametrize("pointer", ["gender", "/name/~2", "/gen~"])
def test_json_patch_bad_pointer_syntax_is_bad_request(patient, pointer):
    with pytest.raises(BadRequest):
        apply_json_patch(patient, [{"op": "replace", "path": pointer, "value": "x"}])


@pytest.mark.parametrize("token", ["01", "-", "x", "9"])
def test_json_patch_bad_array_index_is_unprocessable(patient, token):
    with pytest.raises(Unprocessable):
        apply_json_patch(patient, [{"op": "remove", "path": f"/name/{token}"}])


@pytest.mark.parametrize("document", [
    {"op": "add", "path": "/x", "value": 1},  # not a list
    [{"op": "frobnicate", "path": "/x"}],
    [{"path": "/x", "value": 1}],
    [{"op": "add", "path": "/x"}],  # no value
    [{"op": "move", "path": "/x"}],  # no from
    ["add"],
])
def test_json_patch_malformed_document_is_bad_request(patient, document):
    with pytest.raises(BadRequest):
        apply_json_patch(patient, document)


def test_json_patch_malformed_late_operation_wins_over_earlier_failure(patient):
    with pytest.raises(BadRequest):
        apply_json_patch(patient, [{"op": "remove", "path": "/nothing"}, {"op": "add", "path": "/x"}])


def test_json_patch_null_value_is_allowed(patient):
    assert apply_json_patch(patient, [{"op": "add", "path": "/x", "value": None}])["x"] is None


def test_json_patch_does_not_mutate_input_or_share_values(patient):
    before = copy.deepcopy(patient)
    value = {"text": "new"}
    result = apply_json_patch(patient, [
        {"op": "add", "path": "/name/-", "value": value},
        {"op": "remove", "path": "/telecom"},
    ])
    assert patient == before
    result["name"][-1]["text"] = "changed"
    assert value == {"text": "new"}


# -- FHIRPath Patch: the operations of https://hl7.org/fhir/R4/fhirpatch.html ------------


def test_fhirpatch_add_primitive(patient):
    del patient["birthDate"], patient["_birthDate"]
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("add", "Patient", name="birthDate", value={"valueDate": "1930-01-01"})))
    assert result["birthDate"] == "1930-01-01"


def test_fhirpatch_add_anonymous_type_from_parts(patient):
    value = {"part": [{"name": "name", "valueHumanName": {"text": "a name"}}]}
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("add", "Patient", name="contact", value=value)))
    assert result["contact"] == [{"name": {"text": "a name"}}]


def test_fhirpatch_add_appends_to_a_repeating_element(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("add", "Patient.name[1]", name="given", value={"valueString": "Jimmy"})))
    assert result["name"][1]["given"] == ["Jim", "Jimmy"]


def test_fhirpatch_add_to_existing_single_element_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("add", "Patient", name="gender", value={"valueCode": "female"})))


def test_fhirpatch_add_choice_element_takes_type_suffix():
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    value = {"valueQuantity": {"value": 5, "unit": "mg"}}
    result = apply_fhirpath_patch(observation, fhirpatch(
        operation("add", "Observation", name="value", value=value)))
    assert result["valueQuantity"] == {"value": 5, "unit": "mg"}


def test_fhirpatch_add_choice_type_not_allowed_is_unprocessable():
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(observation, fhirpatch(
            operation("add", "Observation", name="value", value={"valueHumanName": {"text": "x"}})))


def test_fhirpatch_add_wrong_type_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("add", "Patient", name="active", value={"valueDate": "2020-01-01"})))


def test_fhirpatch_add_to_path_matching_several_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("add", "Patient.name", name="text", value={"valueString": "x"})))


def test_fhirpatch_insert_at_index(patient):
    value = {"valueIdentifier": {"system": "http://example.org/new", "value": "3"}}
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("insert", "Patient.identifier", index=1, value=value)))
    assert [i["value"] for i in result["identifier"]] == ["1", "3", "2"]


def test_fhirpatch_insert_primitive_keeps_extensions_aligned(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("insert", "Patient.name[0].given", index=0, value={"valueString": "Pete"})))
    assert result["name"][0]["given"] == ["Pete", "Peter", "James"]
    assert result["name"][0]["_given"] == [None, None, {"id": "g2"}]


def test_fhirpatch_insert_into_missing_list_at_zero(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("insert", "Patient.name[1].prefix", index=0, value={"valueString": "Mr"})))
    assert result["name"][1]["prefix"] == ["Mr"]


def test_fhirpatch_insert_past_end_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("insert", "Patient.identifier", index=3, value={"valueIdentifier": {"value": "x"}})))


def test_fhirpatch_insert_into_single_element_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("insert", "Patient.gender", index=0, value={"valueCode": "female"})))


def test_fhirpatch_delete_list_item_by_filter(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("delete", "Patient.identifier.where(system='http://example.org/mrn')")))
    assert result["identifier"] == [{"system": "http://example.org/ssn", "value": "2"}]


def test_fhirpatch_delete_primitive_takes_its_extensions(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(operation("delete", "Patient.birthDate")))
    assert "birthDate" not in result and "_birthDate" not in result


def test_fhirpatch_delete_primitive_list_item_by_index(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(operation("delete", "Patient.name[0].given[0]")))
    assert result["name"][0]["given"] == ["James"]
    assert result["name"][0]["_given"] == [{"id": "g2"}]


def test_fhirpatch_delete_of_nothing_is_a_no_op(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(operation("delete", "Patient.maritalStatus")))
    assert result == patient


def test_fhirpatch_delete_of_several_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(operation("delete", "Patient.telecom")))


def test_fhirpatch_delete_leaves_no_empty_objects_or_arrays(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("delete", "Patient.telecom[0]"),
        operation("delete", "Patient.telecom[0]"),
        operation("delete", "Patient.name[1].given"),
        operation("delete", "Patient.name[1].use"),
    ))
    assert "telecom" not in result
    assert len(result["name"]) == 1


def test_fhirpatch_replace_primitive(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("replace", "Patient.birthDate", value={"valueDate": "1930-01-01"})))
    assert result["birthDate"] == "1930-01-01"
    assert "_birthDate" not in result  # the old element went, extensions and all


def test_fhirpatch_replace_through_where_and_member(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("replace", "Patient.telecom.where(use='home').value", value={"valueString": "999"})))
    assert result["telecom"][0]["value"] == "999" and result["telecom"][1]["value"] == "222"


def test_fhirpatch_replace_extension_value(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("replace", "Patient.extension('http://example.org/eye').value",
                  value={"valueString": "green"})))
    assert result["extension"] == [{"url": "http://example.org/eye", "valueString": "green"}]


def test_fhirpatch_replace_complex_list_item(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("replace", "Patient.name[1]", value={"valueHumanName": {"text": "Jimmy"}})))
    assert result["name"][1] == {"text": "Jimmy"}


def test_fhirpatch_replace_choice_changes_its_type():
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    observation["valueQuantity"] = {"value": 1}
    result = apply_fhirpath_patch(observation, fhirpatch(
        operation("replace", "Observation.value", value={"valueString": "positive"})))
    assert result["valueString"] == "positive" and "valueQuantity" not in result


def test_fhirpatch_replace_of_nothing_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("replace", "Patient.maritalStatus", value={"valueCodeableConcept": {"text": "M"}})))


def test_fhirpatch_replace_of_several_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("replace", "Patient.name.given", value={"valueString": "x"})))


def test_fhirpatch_move_within_list(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("move", "Patient.name[0].given", source=1, destination=0)))
    assert result["name"][0]["given"] == ["James", "Peter"]
    assert result["name"][0]["_given"] == [{"id": "g2"}, None]


def test_fhirpatch_move_out_of_range_is_unprocessable(patient):
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("move", "Patient.identifier", source=0, destination=2)))


def test_fhirpatch_operations_apply_in_order(patient):
    result = apply_fhirpath_patch(patient, fhirpatch(
        operation("add", "Patient", name="maritalStatus", value={"valueCodeableConcept": {"text": "M"}}),
        operation("replace", "Patient.maritalStatus.text", value={"valueString": "Married"}),
    ))
    assert result["maritalStatus"] == {"text": "Married"}


def test_fhirpatch_does_not_mutate_input(patient):
    before = copy.deepcopy(patient)
    apply_fhirpath_patch(patient, fhirpatch(
        operation("delete", "Patient.identifier[0]"),
        operation("replace", "Patient.name[0].family", value={"valueString": "X"}),
        operation("insert", "Patient.name[0].given", index=0, value={"valueString": "Y"}),
    ))
    assert patient == before


def test_fhirpatch_failure_part_way_leaves_input_untouched(patient):
    before = copy.deepcopy(patient)
    with pytest.raises(Unprocessable):
        apply_fhirpath_patch(patient, fhirpatch(
            operation("delete", "Patient.identifier[0]"),
            operation("replace", "Patient.maritalStatus", value={"valueCodeableConcept": {"text": "M"}}),
        ))
    assert patient == before


@pytest.mark.parametrize("document", [
    {"resourceType": "Patient"},
    {"resourceType": "Parameters"},
    {"resourceType": "Parameters", "parameter": [{"name": "other", "part": []}]},
    fhirpatch({"name": "operation", "part": [{"name": "type", "valueCode": "upsert"},
                                             {"name": "path", "valueString": "Patient"}]}),
    fhirpatch(operation("replace", "Patient.gender")),  # no value
    fhirpatch(operation("insert", "Patient.name", value={"valueHumanName": {}})),  # no index
    fhirpatch(operation("add", "Patient", value={"valueString": "x"})),  # no name
    fhirpatch(operation("delete", "Patient.name.where(")),  # FHIRPath syntax error
    fhirpatch(operation("replace", "Patient.gender", value={"valueNonsense": "x"})),
    fhirpatch(operation("replace", "Patient.gender", value={"valueCode": 7})),
    fhirpatch(operation("replace", "Patient.gender", value={"valueCode": "x", "valueString": "y"})),
    fhirpatch(operation("move", "Patient.name", source=-1, destination=0)),
])
def test_fhirpatch_malformed_document_is_bad_request(patient, document):
    with pytest.raises(BadRequest):
        apply_fhirpath_patch(patient, document)
