"""The benchmark's data generator: deterministic, valid R4, Synthea-shaped, and loadable.

https://hl7.org/fhir/R4/http.html#transaction -- the bundles use urn:uuid fullUrls,
ifNoneExist on pooled Practitioners/Organizations/Locations and conditional references to
them, like Synthea's transaction bundles; after loading, every reference must resolve.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench import generate
from fhir_api.store import validation
from fhir_api.store.models import Resource


def _references(value: Any):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def test_same_seed_gives_the_same_bytes_and_another_seed_other_data():
    assert orjson.dumps(generate.patient_bundle(42, 3)) == orjson.dumps(generate.patient_bundle(42, 3))
    assert orjson.dumps(generate.providers_bundle(42)) == orjson.dumps(generate.providers_bundle(42))
    assert generate.patient_bundle(42, 3) != generate.patient_bundle(43, 3)
    assert generate.patient_bundle(42, 3) != generate.patient_bundle(42, 4)


def test_a_patient_bundle_does_not_depend_on_how_many_patients_are_generated():
    assert list(generate.patient_bundles(7, 3))[2] == list(generate.patient_bundles(7, 6))[2]


def test_bundles_are_transactions_of_50_to_300_entries():
    sizes = [len(b["entry"]) for b in generate.patient_bundles(42, 25)]
    assert all(generate.MIN_ENTRIES <= s <= generate.MAX_ENTRIES for s in sizes), sizes
    assert len(set(sizes)) > 10  # a spread, not one shape repeated


@pytest.mark.django_db  # extensions are looked up among the stored definitions
def test_every_generated_resource_is_valid_r4():
    bundles = [generate.providers_bundle(42), *generate.patient_bundles(42, 6)]
    for bundle in bundles:
        for resource in generate.resources_of(bundle):
            validation.validate(resource)  # raises Unprocessable (422) on any problem


def test_the_data_has_the_us_core_shapes_the_benchmark_searches():
    bundles = list(generate.patient_bundles(42, 10))
    resources = [r for b in bundles for r in generate.resources_of(b)]
    types = {r["resourceType"] for r in resources}
    assert {
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "MedicationRequest",
        "Procedure",
        "Immunization",
        "AllergyIntolerance",
        "DiagnosticReport",
        "Practitioner",
        "Organization",
        "Location",
    } <= types
    names = " ".join(
        n["family"] + " " + " ".join(n["given"])
        for r in resources
        if r["resourceType"] == "Patient"
        for n in r["name"]
    )
    assert any(ch in names for ch in "éëüñøåłö")  # accents in names
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    bp = [o for o in observations if o["code"]["coding"][0]["code"] == "85354-9"]
    assert bp and {c["code"]["coding"][0]["code"] for c in bp[0]["component"]} == {"8480-6", "8462-4"}
    labs = [o for o in observations if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert {o["valueQuantity"]["code"] for o in labs} >= {"mg/dL", "mmol/L"}
    assert all(o["valueQuantity"]["system"] == generate.UCUM for o in labs)
    reports = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    lab_urls = {
        e["fullUrl"]
        for b in bundles
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["category"][0]["coding"][0]["code"] == "laboratory"
    }
    assert reports and all(ref["reference"] in lab_urls for r in reports for ref in r["result"])
    conditional = [ref for r in resources for ref in _references(r) if "?identifier=" in ref]
    assert any(ref.startswith("Practitioner?identifier=" + generate.NPI + "|") for ref in conditional)
    assert any(ref.startswith("Organization?identifier=") for ref in conditional)
    assert any(ref.startswith("Location?identifier=") for ref in conditional)
    pooled = [e for b in bundles for e in b["entry"] if e["request"].get("ifNoneExist")]
    assert {e["request"]["url"] for e in pooled} == {"Practitioner", "Organization", "Location"}


def _load(fhir, bundle: dict[str, Any]) -> dict[str, Any]:
    response = fhir.post("", bundle)
    assert response.status_code == 200, response.content[:2000]
    answer = response.json()
    assert answer["type"] == "transaction-response"
    return answer


def _assert_every_reference_resolves() -> None:
    stored = {(r.resource_type, r.logical_id): r.data for r in Resource.objects.filter(deleted=False).exclude(resource_type="AuditEvent")}
    unresolved = []
    for (rtype, logical_id), data in stored.items():
        for reference in _references(orjson.loads(data)):
            target = tuple(reference.split("/"))
            if len(target) != 2 or target not in stored:
                unresolved.append(f"{rtype}/{logical_id} -> {reference}")
    assert not unresolved, unresolved[:10]


@pytest.mark.django_db
def test_generated_bundles_load_after_the_provider_pool_and_every_reference_resolves(fhir):
    _load(fhir, generate.providers_bundle(42))
    bundles = list(generate.patient_bundles(42, 3))
    for bundle in bundles:
        answer = _load(fhir, bundle)
        statuses = [e["response"]["status"] for e in answer["entry"]]
        pooled = [e for e in bundle["entry"] if e["request"].get("ifNoneExist")]
        assert statuses.count("200 OK") == len(pooled)  # the pool is reused, never duplicated
    _assert_every_reference_resolves()
    pool = generate.providers_bundle(42)["entry"]
    assert Resource.objects.filter(resource_type="Practitioner").count() == sum(
        1 for e in pool if e["resource"]["resourceType"] == "Practitioner"
    )
    assert Resource.objects.filter(resource_type="Patient").count() == 3
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == len(pool) + sum(
        len(b["entry"]) - sum(1 for e in b["entry"] if e["request"].get("ifNoneExist")) for b in bundles
    )


@pytest.mark.django_db
def test_self_contained_bundles_load_on_an_empty_server_and_every_reference_resolves(fhir):
    # No provider pool first: the first bundle creates its practitioners through ifNoneExist
    # and its other entries refer to them conditionally in the same transaction.
    for bundle in generate.patient_bundles(42, 3):
        _load(fhir, bundle)
    _assert_every_reference_resolves()
