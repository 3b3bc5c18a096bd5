"""Validation of resources against their R4 definitions: https://hl7.org/fhir/R4/validation.html

Plain functions, no database: the validator reads only the definitions the project ships.
"""
from __future__ import annotations

import tarfile
import types
import typing
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir_core import types as fhir_core_types
from pydantic import ValidationError

from fhir_api.store import validation
from fhir_api.store.errors import Unprocessable
from fhir_api.store.jsonio import Decimal, loads
from fhir_api.store.structure import structures

# Extensions and claimed profiles are looked up among the stored definitions.
pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "examples-json.tar.gz"

# The spec's own examples break the spec here; the validator sides with the spec text.
SPEC_EXAMPLE_BUGS = {
    # 67 characters: "Ids can be up to 64 characters long" (datatypes.html#id).
    "questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": "SearchParameter.id",
    # DeviceMetric.parent is Reference(Device) in R4; the example points at a DeviceDefinition.
    "devicemetric-example.json": "DeviceMetric.parent",
}


def fhirpath_step(json_name: str) -> str:
    """FHIRPath of a choice element's JSON name: valueTime -> value.ofType(time)."""
    for prefix in ("value", "effective", "deceased", "multipleBirth"):
        rest = json_name[len(prefix):]
        if json_name.startswith(prefix) and rest[:1].isupper():
            code = rest if rest in ("Quantity", "CodeableConcept", "Period") else rest[0].lower() + rest[1:]
            return f"{prefix}.ofType({code})"
    return json_name


@cache
def spec_examples() -> dict[str, dict[str, Any]]:
    with tarfile.open(EXAMPLES) as tar:
        return {
            Path(member.name).name: loads(tar.extractfile(member).read())  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile() and member.name.endswith(".json")
        }


def issues_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(Unprocessable) as caught:
        validation.validate(resource)
    assert caught.value.status == 422
    return list(caught.value.issues or [])


def expressions(resource: dict[str, Any]) -> list[str]:
    return [issue["expression"][0] for issue in issues_of(resource)]


def observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, **elements}


# -- the spec's examples -----------------------------------------------------------------------


def test_all_r4_spec_examples_conform() -> None:
    examples = spec_examples()
    assert len(examples) == 2459
    assert len({r["resourceType"] for r in examples.values()}) == 141
    failures = {}
    for name, resource in examples.items():
        issues = validation.check(resource)
        if issues and name not in SPEC_EXAMPLE_BUGS:
            failures[name] = [(i["expression"][0], i["diagnostics"]) for i in issues[:3]]
    assert failures == {}, f"{len(failures)} spec examples rejected: {failures}"


def test_spec_examples_with_known_errors_are_rejected_for_those_only() -> None:
    for name, where in SPEC_EXAMPLE_BUGS.items():
        issues = validation.check(spec_examples()[name])
        assert [i["expression"][0] for i in issues] == [where]


# -- R4_ONLY_SHAPES is computed, not remembered ------------------------------------------------


def test_r4_only_shapes_is_current() -> None:
    computed = compute_r4_only_shapes()
    assert computed == validation.R4_ONLY_SHAPES, (
        f"add {sorted(computed - validation.R4_ONLY_SHAPES)}, "
        f"remove {sorted(validation.R4_ONLY_SHAPES - computed)}"
    )


def compute_r4_only_shapes() -> frozenset[str]:
    """R4 types that have no R4B model, or whose element tree differs from the R4B model's.

    Walks R4 nodes (type or backbone path) side by side with R4B models, through backbone
    elements and data types. `Extension` is not entered: its open `value[x]` type list
    differs between R4 and R4B and would put every type on the list; see validation.py.
    """
    s = structures()
    local: dict[tuple[str, type], tuple[list[str], list[tuple[str, type]]]] = {}
    out = set()
    for rtype in sorted(s.resource_types):
        try:
            model = get_fhir_model_class(rtype)
        except ValueError:
            out.add(rtype)
            continue
        todo, seen = [(rtype, model)], set()
        while todo:
            pair = todo.pop()
            if pair in seen or pair[0] == "Extension":
                continue
            seen.add(pair)
            if pair not in local:
                local[pair] = _compare_node(*pair)
            diffs, below = local[pair]
            if diffs:
                out.add(rtype)
                break
            todo.extend(below)
    return frozenset(out)


def _compare_node(node: str, model: type) -> tuple[list[str], list[tuple[str, type]]]:
    """Differences at one level, and the (node, model) pairs one level down."""
    s = structures()
    fields = _r4b_fields(model)
    diffs, below, r4_names = [], [], set()
    for el in s.children(node).values():
        names = {el.name + t[0].upper() + t[1:]: t for t in el.types} if el.choice else {el.name: el.types[0]}
        for json_name, code in names.items():
            r4_names.add(json_name)
            where = f"{node}.{json_name}"
            if json_name not in fields:
                diffs.append(f"{where}: not in R4B")
                continue
            is_list, r4b_type, sub, required = fields[json_name]
            if is_list != el.is_array:
                diffs.append(f"{where}: max {el.max} in R4, list={is_list} in R4B")
            if required != (el.min >= 1):
                diffs.append(f"{where}: min {el.min} in R4, required={required} in R4B")
            if code in ("BackboneElement", "Element"):
                if sub is None:
                    diffs.append(f"{where}: backbone in R4, {r4b_type} in R4B")
                else:
                    below.append((el.node, sub))
            elif r4b_type != code and not (json_name == "id" and (code, r4b_type) == ("string", "id")):
                # Resource.id is typed `string` in the R4 snapshot with the id regex as a rule.
                diffs.append(f"{where}: {code} in R4, {r4b_type} in R4B")
            elif sub is not None and code != "Resource":
                below.append((code, sub))
    diffs += [f"{node}.{name}: not in R4" for name in fields if name not in r4_names]
    return diffs, below


def _r4b_fields(model: type) -> dict[str, tuple[bool, str, type | None, bool]]:
    """JSON name -> (is a list, type name, model of a complex type, required), for elements only."""
    out = {}
    for field in model.model_fields.values():  # type: ignore[attr-defined]
        extra = field.json_schema_extra or {}
        if not extra.get("element_property"):
            continue  # `_name` companions, fhir_comments
        is_list, leaf = _unwrap(field.annotation)
        if extra.get("one_of_many"):
            required = bool(extra.get("one_of_many_required"))
        else:
            required = field.is_required() or bool(extra.get("element_required"))
        type_name, sub = _type_of(leaf)
        out[field.alias] = (is_list, type_name, sub, required)
    return out


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        elif origin is list:
            is_list, annotation = True, typing.get_args(annotation)[0]
        else:
            return is_list, annotation


def _type_of(leaf: Any) -> tuple[str, type | None]:
    primitives = fhir_core_types.FHIR_PRIMITIVES_MAPS
    if typing.get_origin(leaf) is typing.Annotated:
        for meta in typing.get_args(leaf)[1:]:
            if type(meta) in primitives:
                return primitives[type(meta)], None
    if leaf in primitives:
        return primitives[leaf], None
    sub = leaf.get_model_klass()
    return sub.get_resource_type(), sub


# -- what gets rejected, and where -------------------------------------------------------------


def test_valid_patient_and_observation_pass() -> None:
    validation.validate(spec_examples()["patient-example.json"])
    validation.validate(observation(valueQuantity={"value": Decimal("72.50"), "unit": "kg"}))


def test_unknown_element_is_rejected_with_its_path() -> None:
    patient = {"resourceType": "Patient", "contact": [{"name": {"family": "Chalmers", "nickname": "x"}}]}
    (issue,) = issues_of(patient)
    assert issue["expression"] == ["Patient.contact[0].name.nickname"]
    assert issue["code"] == "structure"


def test_unknown_top_level_element_and_companion_are_rejected() -> None:
    assert expressions({"resourceType": "Patient", "colour": "blue", "_colour": {"id": "a"}}) == [
        "Patient.colour",
        "Patient._colour",
    ]


def test_string_for_boolean_is_rejected_although_the_r4b_model_coerces_it() -> None:
    patient = {"resourceType": "Patient", "active": "true"}
    get_fhir_model_class("Patient").model_validate(patient)  # pydantic's lax mode says yes
    (issue,) = issues_of(patient)
    assert issue["expression"] == ["Patient.active"]
    assert issue["code"] == "structure"


def test_wrong_json_types_of_numbers_are_rejected_with_their_paths() -> None:
    assert expressions(observation(valueQuantity={"value": "72.5"})) == ["Observation.value.ofType(Quantity).value"]
    assert expressions(observation(valueInteger=1.0)) == ["Observation.value.ofType(integer)"]
    assert expressions(observation(valueInteger=True)) == ["Observation.value.ofType(integer)"]
    assert expressions(observation(valueInteger=2**31)) == ["Observation.value.ofType(integer)"]
    patient = {"resourceType": "Patient", "multipleBirthInteger": "2"}
    assert expressions(patient) == ["Patient.multipleBirth.ofType(integer)"]


@pytest.mark.parametrize("value", ["1974-13-25", "1974-12-32", "2021-02-29", "74-12-25", "1974-12-25T14:35"])
def test_bad_date_is_rejected(value: str) -> None:
    (issue,) = issues_of({"resourceType": "Patient", "birthDate": value})
    assert issue["expression"] == ["Patient.birthDate"]
    assert issue["code"] == "value"


def test_dates_of_every_precision_and_leap_days_pass() -> None:
    for value in ("1974", "1974-12", "2020-02-29"):
        validation.validate({"resourceType": "Patient", "birthDate": value})
    validation.validate(
        observation(effectiveDateTime="2015-06-30T23:59:60Z", issued="2015-02-07T13:28:17.239+02:00")
    )


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("issued", "2015-02-07"),  # an instant needs a time and a zone
        ("issued", "2015-02-07T13:28:17"),
        ("effectiveDateTime", "2015-02-07T13:28:17+15:00"),
        ("valueTime", "24:00:00"),
    ],
)
def test_bad_instants_datetimes_and_times_are_rejected(element: str, value: str) -> None:
    assert expressions(observation(**{element: value})) == [f"Observation.{fhirpath_step(element)}"]


def test_missing_required_elements_are_each_reported() -> None:
    issues = issues_of({"resourceType": "Observation", "subject": {"reference": "Patient/1"}})
    assert {(i["expression"][0], i["code"]) for i in issues} == {
        ("Observation.status", "required"),
        ("Observation.code", "required"),
    }


def test_required_element_inside_a_backbone_and_a_data_type() -> None:
    assert expressions(observation(component=[{"valueString": "x"}])) == ["Observation.component[0].code"]
    assert expressions({"resourceType": "Patient", "extension": [{"valueString": "x"}]}) == [
        "Patient.extension[0].url"
    ]


def test_required_primitive_may_be_given_by_its_extension_alone() -> None:
    reason = {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
    absent = {"extension": [reason]}
    validation.validate({"resourceType": "Observation", "_status": absent, "code": {"text": "x"}})


def test_array_given_where_a_single_value_is_expected() -> None:
    (issue,) = issues_of({"resourceType": "Patient", "gender": ["male"]})
    assert issue["expression"] == ["Patient.gender"]
    assert issue["code"] == "structure"


def test_single_value_given_where_an_array_is_expected() -> None:
    assert expressions({"resourceType": "Patient", "name": {"family": "Chalmers"}}) == ["Patient.name"]
    assert expressions({"resourceType": "Patient", "name": [{"given": "Peter"}]}) == ["Patient.name[0].given"]


def test_wrong_value_inside_an_array_is_located_by_index() -> None:
    patient = {"resourceType": "Patient", "name": [{"given": ["Peter"]}, {"given": ["Jim", 7]}]}
    assert expressions(patient) == ["Patient.name[1].given[1]"]


@pytest.mark.parametrize("bad_id", ["a_b", "a b", "x" * 65, "ünïcode"])
def test_invalid_id_is_rejected(bad_id: str) -> None:
    (issue,) = issues_of({"resourceType": "Patient", "id": bad_id})
    assert issue["expression"] == ["Patient.id"]


def test_valid_ids_pass() -> None:
    for good in ("a", "A-1.b", "x" * 64):
        validation.validate({"resourceType": "Patient", "id": good})


def test_contained_resource_id_is_checked_too() -> None:
    patient = {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "#org"}]}
    assert expressions(patient) == ["Patient.contained[0].id"]


@pytest.mark.parametrize(
    ("patient", "where"),
    [
        ({"name": [{}]}, "Patient.name[0]"),
        ({"name": []}, "Patient.name"),
        ({"name": [{"family": ""}]}, "Patient.name[0].family"),
        ({"gender": None}, "Patient.gender"),
        ({"maritalStatus": {}}, "Patient.maritalStatus"),
        ({"_birthDate": {}}, "Patient.birthDate"),
    ],
)
def test_empty_elements_are_rejected(patient: dict[str, Any], where: str) -> None:
    assert expressions({"resourceType": "Patient", **patient}) == [where]


def test_choice_element_given_twice_is_rejected() -> None:
    patient = {"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"}
    assert expressions(patient) == ["Patient.deceased.ofType(dateTime)"]


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("url", "http://example.org/a b"),
        ("url", " "),
    ],
)
def test_uri_with_spaces_is_rejected(element: str, value: str) -> None:
    patient = {"resourceType": "Patient", "extension": [{element: value, "valueString": "x"}]}
    assert expressions(patient) == ["Patient.extension[0].url"]


@pytest.mark.parametrize(
    ("value_key", "value", "ok"),
    [
        ("valueCode", "a b", True),
        ("valueCode", "a  b", False),
        ("valueCode", " a", False),
        ("valueOid", "urn:oid:1.2.3", True),
        ("valueOid", "1.2.3", False),
        ("valueUuid", "urn:uuid:c757873d-ec9a-1326-a141-556f43239520", True),  # not version 4: still R4
        ("valueUuid", "c757873d-ec9a-4326-a141-556f43239520", False),
        ("valuePositiveInt", 0, False),
        ("valueUnsignedInt", 0, True),
        ("valueUnsignedInt", -1, False),
        ("valueBase64Binary", "aGVs\nbG8h", True),
        ("valueBase64Binary", "aGVsbG8", False),
        ("valueId", "a" * 65, False),
        ("valueMarkdown", "**bold**", True),
        ("valueString", "\u00a0", True),  # R4's regexes mean ASCII whitespace
        ("valueDecimal", Decimal("1.50"), True),
        ("valueDecimal", 1e3, True),
        ("valueMeta", {"versionId": "1"}, True),  # an R4 open type that R4B dropped
    ],
)
def test_primitive_lexical_forms(value_key: str, value: Any, ok: bool) -> None:
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "p", value_key: value}]}
    if ok:
        validation.validate(parameters)
    else:
        assert expressions(parameters) == [f"Parameters.parameter[0].{fhirpath_step(value_key)}"]


def test_xhtml_must_be_a_div_in_the_xhtml_namespace() -> None:
    text = {"status": "generated", "div": "<p>hello</p>"}
    assert expressions({"resourceType": "Patient", "text": text}) == ["Patient.text.div"]
    text["div"] = '<div xmlns="http://www.w3.org/1999/xhtml"><p>hello</p></div>'
    validation.validate({"resourceType": "Patient", "text": text})


# -- primitive companions (`_element`) ---------------------------------------------------------


def test_companion_arrays_line_up_with_nulls() -> None:
    ext = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    name = {"given": ["Jim", None], "_given": [None, ext]}
    validation.validate({"resourceType": "Patient", "name": [name]})
    validation.validate({"resourceType": "Patient", "name": [{"_given": [ext]}]})


def test_null_without_a_companion_is_rejected() -> None:
    assert expressions({"resourceType": "Patient", "name": [{"given": ["Jim", None]}]}) == [
        "Patient.name[0].given[1]"
    ]


def test_companion_array_of_the_wrong_length_is_rejected() -> None:
    ext = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    patient = {"resourceType": "Patient", "name": [{"given": ["Jim", "Bob"], "_given": [ext]}]}
    assert expressions(patient) == ["Patient.name[0].given"]


def test_bad_extension_inside_a_companion_is_located_on_the_primitive() -> None:
    no_url = {"extension": [{"valueString": "y"}]}
    patient = {"resourceType": "Patient", "birthDate": "1974", "_birthDate": no_url}
    assert expressions(patient) == ["Patient.birthDate.extension[0].url"]


def test_companion_of_a_complex_element_is_rejected() -> None:
    assert expressions({"resourceType": "Patient", "_name": {"id": "x"}}) == ["Patient._name"]


# -- nested resources --------------------------------------------------------------------------


def test_bundle_entry_resources_are_validated_as_their_own_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "active": True}},
            {"resource": {"resourceType": "Observation", "status": "final"}},
            {"resource": {"resourceType": "Patient", "hairColour": "red"}},
        ],
    }
    assert expressions(bundle) == ["Bundle.entry[1].resource.code", "Bundle.entry[2].resource.hairColour"]


def test_nested_resource_of_unknown_type_is_rejected() -> None:
    entry = {"resource": {"resourceType": "Pet"}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [entry]}
    assert expressions(bundle) == ["Bundle.entry[0].resource"]


def test_parameters_resource_and_contained_resources_are_validated() -> None:
    parameter = {"name": "p", "resource": {"resourceType": "Patient", "x": 1}}
    parameters = {"resourceType": "Parameters", "parameter": [parameter]}
    assert expressions(parameters) == ["Parameters.parameter[0].resource.x"]
    patient = {"resourceType": "Patient", "contained": [{"resourceType": "Observation", "status": "final"}]}
    assert expressions(patient) == ["Patient.contained[0].code"]


def test_r4_only_resource_nested_in_a_shared_shape_resource_passes_both_passes() -> None:
    product = {"resourceType": "MedicinalProduct", "id": "mp", "name": [{"productName": "Aspirin"}]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": product}]}
    validation.validate(bundle)
    validation.validate({"resourceType": "Patient", "contained": [product]})


# -- R4-only types, and R4B-only elements ------------------------------------------------------


def test_r4_only_type_is_validated_through_the_r4_definitions() -> None:
    assert "MedicinalProduct" in validation.R4_ONLY_SHAPES
    with pytest.raises(ValueError):
        get_fhir_model_class("MedicinalProduct")  # R4B has no such model
    validation.validate(spec_examples()["medicinalproduct-example.json"])
    product = {"resourceType": "MedicinalProduct", "name": [{"productName": "Aspirin", "brand": "x"}]}
    assert expressions(product) == ["MedicinalProduct.name[0].brand"]
    assert expressions({"resourceType": "MedicinalProduct", "name": [{"namePart": [{"part": "x"}]}]}) == [
        "MedicinalProduct.name[0].namePart[0].type",
        "MedicinalProduct.name[0].productName",
    ]


def test_r4_shape_of_a_changed_type_is_accepted_where_the_r4b_model_refuses_it() -> None:
    evidence = spec_examples()["evidence-example.json"]
    with pytest.raises(ValidationError):
        get_fhir_model_class("Evidence").model_validate(evidence)
    validation.validate(evidence)


def test_r4b_only_element_is_rejected() -> None:
    # R4B added ActivityDefinition.subject[x] as canonical; R4 has CodeableConcept | Reference.
    activity = {"resourceType": "ActivityDefinition", "status": "draft", "subjectCanonical": "http://x.org/g"}
    get_fhir_model_class("ActivityDefinition").model_validate(activity)  # fine for R4B
    (issue,) = issues_of(activity)
    assert issue["expression"] == ["ActivityDefinition.subjectCanonical"]


def test_r4b_only_extension_value_type_is_rejected_on_any_type() -> None:
    ext = {"url": "http://example.org/x", "valueCodeableReference": {"concept": {"text": "x"}}}
    patient = {"resourceType": "Patient", "extension": [ext]}
    get_fhir_model_class("Patient").model_validate(patient)  # fine for R4B
    assert expressions(patient) == ["Patient.extension[0].valueCodeableReference"]


def test_r4_only_extension_value_type_is_accepted() -> None:
    ext = {"url": "http://example.org/x", "valueMeta": {"versionId": "1"}}
    patient = {"resourceType": "Patient", "extension": [ext]}
    validation.validate(patient)


# -- the error itself --------------------------------------------------------------------------


def test_error_is_a_422_outcome_with_one_issue_per_problem() -> None:
    with pytest.raises(Unprocessable) as caught:
        validation.validate({"resourceType": "Observation", "statuss": "final", "valueBoolean": "yes"})
    outcome = caught.value.outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"], i["expression"]) for i in outcome["issue"]] == [
        ("error", "structure", ["Observation.statuss"]),
        ("error", "structure", ["Observation.value.ofType(boolean)"]),
        ("error", "required", ["Observation.status"]),
        ("error", "required", ["Observation.code"]),
    ]
    assert "4 issues" in caught.value.diagnostics


def test_issues_are_capped() -> None:
    patient = {"resourceType": "Patient", **{f"x{i}": 1 for i in range(500)}}
    issues = issues_of(patient)
    assert len(issues) == validation.MAX_ISSUES


def test_every_issue_code_is_one_of_the_documented_ones() -> None:
    codes: Counter[str] = Counter()
    for resource in (
        {"resourceType": "Patient", "x": 1, "active": "no", "birthDate": "x", "name": []},
        {"resourceType": "Observation"},
    ):
        codes.update(i["code"] for i in validation.check(resource))
    assert set(codes) <= {"structure", "required", "value", "invalid"}


def test_odd_keys_are_unknown_elements_not_crashes() -> None:
    assert expressions({"resourceType": "Patient", "": 1, "_": 2}) == ["Patient.", "Patient._"]


def test_absurdly_deep_nesting_is_refused_not_a_crash() -> None:
    item: dict[str, Any] = {"linkId": "leaf", "type": "display"}
    for i in range(2000):
        item = {"linkId": str(i), "type": "group", "item": [item]}
    questionnaire = {"resourceType": "Questionnaire", "status": "draft", "item": [item]}
    (issue,) = issues_of(questionnaire)
    assert issue["code"] == "structure"


def test_reasonably_deep_nesting_passes() -> None:
    item: dict[str, Any] = {"linkId": "leaf", "type": "display"}
    for i in range(30):
        item = {"linkId": str(i), "type": "group", "item": [item]}
    validation.validate({"resourceType": "Questionnaire", "status": "draft", "item": [item]})
