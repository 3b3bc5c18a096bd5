"""Slicing by `exists`, `type` and `profile` discriminators, through `resolve()`, and profile targets.

https://hl7.org/fhir/R4/profiling.html#discriminator -- small profiles the tests store (POST
StructureDefinition, as a user would) slice an element; a resource claiming the profile in
`meta.profile` is checked on write: each value goes to the slice whose discriminators it meets,
and the slice's cardinality and constraints apply to it. `resolve()` follows a Reference to a
contained resource, a Bundle entry, or a resource stored on this server.
"""
from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db

IG = "http://example.org/slices"
CORE = "http://hl7.org/fhir/StructureDefinition/"


def profile(name: str, rtype: str, *elements: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "id": name, "url": f"{IG}/{name}", "name": name.title().replace("-", ""),
            "status": "active", "kind": "resource", "abstract": False, "type": rtype, "derivation": "constraint",
            "baseDefinition": f"{CORE}{rtype}", "differential": {"element": list(elements)}}


def el(element_id: str, **more: Any) -> dict[str, Any]:
    path = ".".join(step.split(":", 1)[0] for step in element_id.split("."))
    return {"id": element_id, "path": path, **more}


def store(fhir, sd: dict[str, Any]) -> str:
    response = fhir.put(f"/StructureDefinition/{sd['id']}", sd)
    assert response.status_code in (200, 201), response.content
    return sd["url"]


def claiming(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "meta": {"profile": [url]}}


def refusal(response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.content
    return [(i["expression"][0], i["diagnostics"]) for i in response.json()["issue"]]


def sliced(discriminator_type: str, path: str, rules: str = "open") -> dict[str, Any]:
    return {"slicing": {"discriminator": [{"type": discriminator_type, "path": path}], "rules": rules}}


# -- exists -------------------------------------------------------------------------------------


@pytest.fixture
def contacts(fhir) -> str:
    """Patient.contact sliced by the presence of `organization`: one organisation, others named."""
    return store(fhir, profile(
        "contacts", "Patient",
        el("Patient.contact", **sliced("exists", "organization", "closed")),
        el("Patient.contact:org", sliceName="org", min=0, max="1"),
        el("Patient.contact:org.organization", min=1),
        el("Patient.contact:person", sliceName="person", min=0, max="*"),
        el("Patient.contact:person.organization", max="0"),
        el("Patient.contact:person.name", min=1),
    ))


def test_exists_discriminator_sorts_values_by_presence(fhir, contacts):
    org = {"organization": {"reference": "Organization/1"}}
    person = {"name": {"family": "Lee"}}
    good = claiming(contacts, {"resourceType": "Patient", "contact": [org, person, person]})
    assert fhir.post("/Patient", good).status_code == 201
    (where, message), = refusal(fhir.post("/Patient", claiming(contacts, {"resourceType": "Patient",
                                                                          "contact": [org, org]})))
    assert where == "Patient.contact[1]" and "Patient.contact:org allows at most 1" in message
    (where, message), = refusal(fhir.post("/Patient", claiming(contacts, {"resourceType": "Patient",
                                                                          "contact": [{"gender": "male"}]})))
    # Without an organization the contact is a person's, and a person's contact needs a name.
    assert where == "Patient.contact[0]" and "Patient.contact.name needs at least 1" in message


# -- type -----------------------------------------------------------------------------------------


@pytest.fixture
def quantities_only(fhir) -> str:
    """Observation.value[x] sliced by type: a UCUM Quantity, no string, nothing else (closed)."""
    return store(fhir, profile(
        "ucum-values", "Observation",
        el("Observation.value[x]", **sliced("type", "$this", "closed")),
        el("Observation.value[x]:valueQuantity", sliceName="valueQuantity", type=[{"code": "Quantity"}]),
        el("Observation.value[x]:valueQuantity.system", fixedUri="http://unitsofmeasure.org"),
        el("Observation.value[x]:valueString", sliceName="valueString", max="0", type=[{"code": "string"}]),
    ))


def observation(**more: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, **more}


def test_type_discriminator_on_a_choice(fhir, quantities_only):
    kg = {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    assert fhir.post("/Observation", claiming(quantities_only, observation(valueQuantity=kg))).status_code == 201
    pounds = {**kg, "system": "http://example.org/units"}
    (where, message), = refusal(fhir.post("/Observation", claiming(quantities_only, observation(valueQuantity=pounds))))
    assert where == "Observation.value.ofType(Quantity).system" and "must be exactly" in message
    (where, message), = refusal(fhir.post("/Observation", claiming(quantities_only, observation(valueString="heavy"))))
    assert where == "Observation.value.ofType(string)" and "value[x]:valueString allows at most 0" in message
    (where, message), = refusal(fhir.post("/Observation", claiming(quantities_only, observation(valueBoolean=True))))
    assert where == "Observation.value.ofType(boolean)" and "fits no slice" in message


@pytest.fixture
def patient_document(fhir) -> str:
    """A collection Bundle: exactly one Patient entry, any number of Observations, nothing else."""
    return store(fhir, profile(
        "patient-document", "Bundle",
        el("Bundle.entry", **sliced("type", "resource", "closed")),
        el("Bundle.entry:patient", sliceName="patient", min=1, max="1"),
        el("Bundle.entry:patient.resource", type=[{"code": "Patient"}]),
        el("Bundle.entry:observation", sliceName="observation", min=0, max="*"),
        el("Bundle.entry:observation.resource", type=[{"code": "Observation"}]),
    ))


def collection(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def test_type_discriminator_on_resources(fhir, patient_document):
    patient = {"resourceType": "Patient", "active": True}
    good = claiming(patient_document, collection(patient, observation(), observation()))
    assert fhir.post("/Bundle", good).status_code == 201
    (where, message), = refusal(fhir.post("/Bundle", claiming(patient_document, collection(observation()))))
    assert where == "Bundle" and "Bundle.entry:patient needs at least 1" in message
    stranger = {"resourceType": "Practitioner", "active": True}
    (where, message), = refusal(fhir.post("/Bundle", claiming(patient_document, collection(patient, stranger))))
    assert where == "Bundle.entry[1]" and "fits no slice" in message


# -- profile --------------------------------------------------------------------------------------


@pytest.fixture
def named_patient(fhir) -> str:
    return store(fhir, profile("named-patient", "Patient", el("Patient.name", min=1)))


@pytest.fixture
def with_named_patient(fhir, named_patient) -> str:
    """Bundle.entry sliced by profile: one entry's resource must conform to named-patient."""
    return store(fhir, profile(
        "with-named-patient", "Bundle",
        el("Bundle.entry", **sliced("profile", "resource")),
        el("Bundle.entry:named", sliceName="named", min=1, max="1"),
        el("Bundle.entry:named.resource", type=[{"code": "Patient", "profile": [named_patient]}]),
    ))


def test_profile_discriminator_checks_conformance_to_the_slice_profile(fhir, with_named_patient):
    named = {"resourceType": "Patient", "name": [{"family": "Lee"}]}
    nameless = {"resourceType": "Patient", "active": True}
    assert fhir.post("/Bundle", claiming(with_named_patient, collection(nameless, named))).status_code == 201
    (where, message), = refusal(fhir.post("/Bundle", claiming(with_named_patient, collection(nameless))))
    assert where == "Bundle" and "Bundle.entry:named needs at least 1" in message
    (where, message), = refusal(fhir.post("/Bundle", claiming(with_named_patient, collection(named, named))))
    assert "Bundle.entry:named allows at most 1" in message


def test_a_profile_discriminator_naming_an_unknown_profile_is_declared_unchecked(fhir):
    url = store(fhir, profile(
        "with-unknown", "Bundle",
        el("Bundle.entry", **sliced("profile", "resource")),
        el("Bundle.entry:x", sliceName="x", min=1),
        el("Bundle.entry:x.resource", type=[{"code": "Patient", "profile": ["http://example.org/not-held"]}]),
    ))
    outcome = fhir.post(f"/Bundle/$validate?profile={url}", collection({"resourceType": "Patient", "active": True}))
    issues = outcome.json()["issue"]
    assert [i["severity"] for i in issues] == ["information"] * len(issues)
    assert any("not held here" in i["diagnostics"] and "were not checked" in i["diagnostics"] for i in issues)


# -- resolve() ----------------------------------------------------------------------------------


@pytest.fixture
def panel(fhir) -> str:
    """Observation.hasMember sliced by the type of what it resolves to: Observations only."""
    return store(fhir, profile(
        "observation-panel", "Observation",
        el("Observation.hasMember", **sliced("type", "resolve()")),
        el("Observation.hasMember:observation", sliceName="observation", min=1,
           type=[{"code": "Reference", "targetProfile": [f"{CORE}Observation"]}]),
        el("Observation.hasMember:answers", sliceName="answers", max="0",
           type=[{"code": "Reference", "targetProfile": [f"{CORE}QuestionnaireResponse"]}]),
    ))


def test_resolve_follows_contained_and_stored_references(fhir, panel, settings):
    member = fhir.post("/Observation", observation()).json()["id"]
    answers = fhir.post("/QuestionnaireResponse", {"resourceType": "QuestionnaireResponse",
                                                   "status": "completed"}).json()["id"]
    contained = {"resourceType": "Observation", "id": "m", "status": "final", "code": {"text": "x"}}
    assert fhir.post("/Observation", claiming(panel, observation(
        hasMember=[{"reference": "#m"}], contained=[contained]))).status_code == 201
    assert fhir.post("/Observation", claiming(panel, observation(
        hasMember=[{"reference": f"Observation/{member}"}]))).status_code == 201
    (where, message), = refusal(fhir.post("/Observation", claiming(panel, observation(
        hasMember=[{"reference": f"Observation/{member}"}, {"reference": f"QuestionnaireResponse/{answers}"}]))))
    assert where == "Observation.hasMember[1]" and "hasMember:answers allows at most 0" in message
    settings.FHIR_BASE_URL = "https://fhir.example.org/r4"
    absolute = f"https://fhir.example.org/r4/QuestionnaireResponse/{answers}"
    (where, message), = refusal(fhir.post("/Observation", claiming(panel, observation(
        hasMember=[{"reference": f"Observation/{member}"}, {"reference": absolute}]))))
    assert "hasMember:answers allows at most 0" in message
    # A reference that resolves to nothing here fits no slice: the Observation slice stays empty.
    (where, message), = refusal(fhir.post("/Observation", claiming(panel, observation(
        hasMember=[{"reference": "Observation/not-stored"}]))))
    assert where == "Observation" and "hasMember:observation needs at least 1" in message


@pytest.fixture
def named_performer(fhir) -> str:
    named = store(fhir, {**profile("named-practitioner", "Practitioner", el("Practitioner.name", min=1))})
    return store(fhir, profile(
        "named-performer", "Observation",
        el("Observation.performer", **sliced("profile", "resolve()")),
        el("Observation.performer:named", sliceName="named", min=1,
           type=[{"code": "Reference", "targetProfile": [named]}]),
    ))


def test_profile_discriminator_through_resolve(fhir, named_performer):
    named = fhir.post("/Practitioner", {"resourceType": "Practitioner", "name": [{"family": "Who"}]}).json()["id"]
    nameless = fhir.post("/Practitioner", {"resourceType": "Practitioner", "active": True}).json()["id"]
    ok = observation(performer=[{"reference": f"Practitioner/{nameless}"}, {"reference": f"Practitioner/{named}"}])
    assert fhir.post("/Observation", claiming(named_performer, ok)).status_code == 201
    (where, message), = refusal(fhir.post("/Observation", claiming(named_performer, observation(
        performer=[{"reference": f"Practitioner/{nameless}"}]))))
    assert "Observation.performer:named needs at least 1" in message


def test_resolve_finds_bundle_entries_by_full_url(fhir):
    url = store(fhir, profile(
        "composed", "Bundle",
        el("Bundle.entry", **sliced("type", "resource.subject.resolve()")),
        el("Bundle.entry:about-group", sliceName="about-group", max="0"),
        el("Bundle.entry:about-group.resource", type=[{"code": "Observation"}]),
        el("Bundle.entry:about-group.resource.subject",
           type=[{"code": "Reference", "targetProfile": [f"{CORE}Group"]}]),
    ))
    group = "urn:uuid:1c6f8e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
    patient = "urn:uuid:2d7f9e3b-4c5e-4f6a-9b0c-1d2e3f4a5b6c"
    entries = [{"fullUrl": group, "resource": {"resourceType": "Group", "type": "person", "actual": True}},
               {"fullUrl": patient, "resource": {"resourceType": "Patient", "active": True}},
               {"resource": observation(subject={"reference": patient})}]
    body = claiming(url, {"resourceType": "Bundle", "type": "collection", "entry": entries})
    assert fhir.post("/Bundle", body).status_code == 201
    entries[2]["resource"]["subject"]["reference"] = group
    (where, message), = refusal(fhir.post("/Bundle", body))
    assert "Bundle.entry:about-group allows at most 0" in message


# -- target types a profile narrows -----------------------------------------------------------------


def test_a_profile_narrows_reference_targets_to_its_target_profiles_types(fhir, named_patient):
    url = store(fhir, profile("patient-subject", "Observation",
                              el("Observation.subject", min=1, type=[{"code": "Reference", "targetProfile": [named_patient]}])))
    assert fhir.post("/Observation", claiming(url, observation(subject={"reference": "Patient/1"}))).status_code == 201
    (where, message), = refusal(fhir.post("/Observation", claiming(url, observation(subject={"reference": "Group/1"}))))
    assert where == "Observation.subject" and "may reference Patient here, not a Group" in message
    logical = {"identifier": {"system": "http://example.org/devices", "value": "d1"}, "type": "Device"}
    (where, message), = refusal(fhir.post("/Observation", claiming(url, observation(subject=logical))))
    assert "not a Device" in message


def test_resolve_reads_only_what_the_client_may_read(fhir, panel, settings):
    from tests.access_tokens import mint

    member = fhir.post("/Observation", observation()).json()["id"]
    answers = fhir.post("/QuestionnaireResponse", {"resourceType": "QuestionnaireResponse",
                                                   "status": "completed"}).json()["id"]
    body = claiming(panel, observation(hasMember=[{"reference": f"Observation/{member}"},
                                                  {"reference": f"QuestionnaireResponse/{answers}"}]))
    settings.FHIR_AUTH_REQUIRED = True
    everything = {"Authorization": f"Bearer {mint('system/*.cruds')}"}
    assert fhir.post("/Observation", body, headers=everything).status_code == 422
    # Without the right to read QuestionnaireResponses, that member resolves to nothing: the
    # profile cannot be used to learn what it is.
    observations = {"Authorization": f"Bearer {mint('system/Observation.cruds system/StructureDefinition.rs')}"}
    assert fhir.post("/Observation", body, headers=observations).status_code == 201
