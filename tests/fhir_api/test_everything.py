"""$everything of a patient or an encounter.

https://hl7.org/fhir/R4/patient-operation-everything.html and
https://hl7.org/fhir/R4/encounter-operation-everything.html
"""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fhir_search.care_dates import CARE_DATE, care_date_param
from fhir_search.compartments import member_types
from fhir_search.registry import registry
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def _create(fhir, body: dict[str, Any]) -> dict[str, Any]:
    response = fhir.post(f"/{body['resourceType']}", body)
    assert response.status_code == 201, response.content
    return response.json()


def _observation(patient: dict, when: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": f"Patient/{patient['id']}"}, **extra}
    if when:
        body["effectiveDateTime"] = when
    return body


def _refs(bundle: dict, mode: str | None = None) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if mode is None or e["search"]["mode"] == mode]


def _ref(resource: dict) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _follow_next(fhir, bundle: dict):
    """GET the bundle's next link, or None when there is none."""
    url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    if url is None:
        return None
    parts = urlsplit(url)
    return fhir.get(parts.path.removeprefix("/fhir"), **dict(parse_qsl(parts.query)))


def _walk(fhir, path: str, **params: Any) -> list[dict]:
    """Every page, following next links."""
    pages = []
    response = fhir.get(path, **params)
    while response is not None:
        assert response.status_code == 200, response.content
        pages.append(response.json())
        response = _follow_next(fhir, pages[-1])
    return pages


@pytest.fixture
def record(fhir, patient, practitioner) -> dict[str, dict]:
    """A patient's record: an encounter at a location, observations, a medication order."""
    org = _create(fhir, {"resourceType": "Organization", "name": "Good Health Clinic"})
    location = _create(fhir, {"resourceType": "Location", "name": "Ward 3"})
    medication = _create(fhir, {"resourceType": "Medication", "code": {"text": "aspirin"}})
    encounter = _create(fhir, {
        "resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{patient['id']}"},
        "serviceProvider": {"reference": f"Organization/{org['id']}"},
        "location": [{"location": {"reference": f"Location/{location['id']}"}}],
        "period": {"start": "2021-03-01", "end": "2021-03-02"},
    })
    obs = _create(fhir, _observation(patient, "2021-03-01T10:00:00Z",
                                     performer=[{"reference": f"Practitioner/{practitioner['id']}"}],
                                     encounter={"reference": f"Encounter/{encounter['id']}"}))
    order = _create(fhir, {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": {"reference": f"Patient/{patient['id']}"},
        "medicationReference": {"reference": f"Medication/{medication['id']}"},
        "encounter": {"reference": f"Encounter/{encounter['id']}"},
    })
    other = _create(fhir, new_patient(name=[{"family": "Other"}]))
    other_obs = _create(fhir, _observation(other, "2021-03-01"))
    return {"patient": patient, "practitioner": practitioner, "org": org, "location": location,
            "medication": medication, "encounter": encounter, "obs": obs, "order": order,
            "other": other, "other_obs": other_obs}


def test_patient_everything_returns_the_compartment_as_matches_and_what_it_refers_to_as_includes(fhir, record):
    response = fhir.get(f"/Patient/{record['patient']['id']}/$everything")
    assert response.status_code == 200, response.content
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    matches = {_ref(record[k]) for k in ("patient", "encounter", "obs", "order")}
    includes = {_ref(record[k]) for k in ("practitioner", "org", "location", "medication")}
    assert set(_refs(bundle, "match")) == matches
    assert set(_refs(bundle, "include")) == includes
    assert len(_refs(bundle)) == len(matches) + len(includes)  # nothing twice
    assert bundle["total"] == len(matches)
    assert _ref(record["other"]) not in _refs(bundle) and _ref(record["other_obs"]) not in _refs(bundle)
    assert all(e["fullUrl"].endswith(_ref(e["resource"])) for e in bundle["entry"])


def test_paging_walks_every_match_and_include_exactly_once(fhir, record):
    patient = record["patient"]
    for i in range(5):  # more observations by the same practitioner, spread over pages
        _create(fhir, _observation(patient, f"2021-04-0{i + 1}",
                                   performer=[{"reference": f"Practitioner/{record['practitioner']['id']}"}]))
    whole = fhir.get(f"/Patient/{patient['id']}/$everything").json()
    pages = _walk(fhir, f"/Patient/{patient['id']}/$everything", _count="2")
    assert len(pages) == 5  # 9 matches, 2 a page
    seen = [ref for page in pages for ref in _refs(page)]
    assert len(seen) == len(set(seen)), "a resource appeared twice"
    assert sorted(seen) == sorted(_refs(whole))
    assert all("total" not in page for page in pages)


def test_paging_is_not_disturbed_by_writes_between_pages(fhir, record):
    patient = record["patient"]
    path = f"/Patient/{patient['id']}/$everything"
    first = fhir.get(path, _count="2").json()
    # An update keeps a resource's place; a resource created later is not in this walk.
    order = record["order"]
    assert fhir.put(f"/MedicationRequest/{order['id']}", {**order, "status": "on-hold"}).status_code == 200
    late = _create(fhir, _observation(patient, "2021-05-01"))
    rest = []
    response = _follow_next(fhir, first)
    while response is not None:
        rest.append(response.json())
        response = _follow_next(fhir, rest[-1])
    seen = _refs(first, "match") + [ref for page in rest for ref in _refs(page, "match")]
    assert sorted(seen) == sorted(_ref(record[k]) for k in ("patient", "encounter", "obs", "order"))
    assert _ref(late) in _refs(fhir.get(path).json(), "match")


def test_a_page_reads_its_matches_with_one_statement(fhir, record, monkeypatch):
    from smart_auth.audit import trail

    monkeypatch.setattr(trail, "record", lambda event: None)  # the audit record is buffered: not here
    patient = record["patient"]
    for i in range(6):
        _create(fhir, _observation(patient, f"2021-04-0{i + 1}"))
    first = fhir.get(f"/Patient/{patient['id']}/$everything", _count="3").json()
    with CaptureQueriesContext(connection) as queries:
        response = _follow_next(fhir, first)
    assert response.status_code == 200
    # the patient's existence, the page, and at most three for what the page refers to
    assert len(queries) <= 5, [q["sql"] for q in queries]
    page_reads = [q["sql"] for q in queries if "UNION" in q["sql"] and "LIMIT" in q["sql"]]
    assert len(page_reads) == 1


def test_deleted_members_are_left_out(fhir, record):
    assert fhir.delete(f"/Observation/{record['obs']['id']}").status_code == 204
    bundle = fhir.get(f"/Patient/{record['patient']['id']}/$everything").json()
    assert _ref(record["obs"]) not in _refs(bundle)
    assert _ref(record["practitioner"]) not in _refs(bundle)  # only the deleted one referred to it


def test_type_parameter_limits_matches_and_includes(fhir, record):
    bundle = fhir.get(f"/Patient/{record['patient']['id']}/$everything", _type="Observation,Practitioner").json()
    assert set(_refs(bundle, "match")) == {_ref(record["obs"])}
    assert set(_refs(bundle, "include")) == {_ref(record["practitioner"])}


def test_unknown_type_in_type_parameter_is_400(fhir, patient):
    assert fhir.get(f"/Patient/{patient['id']}/$everything", _type="Unicorn").status_code == 400


def test_since_keeps_matches_updated_since_but_still_includes_their_references(fhir, record):
    obs = record["obs"]
    since = fhir.put(f"/Observation/{obs['id']}", {**obs, "status": "amended"}).json()["meta"]["lastUpdated"]
    bundle = fhir.get(f"/Patient/{record['patient']['id']}/$everything", _since=since).json()
    assert _refs(bundle, "match") == [_ref(obs)]
    # the patient too: not a match under _since, but the observation refers to it
    assert set(_refs(bundle, "include")) == {_ref(record[k]) for k in ("practitioner", "encounter", "patient")}


def test_start_and_end_select_matches_by_care_date(fhir, record):
    patient = record["patient"]
    old = _create(fhir, _observation(patient, "2019-06-01"))
    undated = _create(fhir, _observation(patient))
    bundle = fhir.get(f"/Patient/{patient['id']}/$everything", start="2021-01-01", end="2021-12-31").json()
    matches = set(_refs(bundle, "match"))
    assert _ref(old) not in matches
    assert {_ref(record["obs"]), _ref(record["encounter"]), _ref(undated), _ref(patient)} <= matches
    only_end = set(_refs(fhir.get(f"/Patient/{patient['id']}/$everything", end="2020").json(), "match"))
    assert _ref(old) in only_end and _ref(record["obs"]) not in only_end


def test_malformed_date_parameter_is_400(fhir, patient):
    assert fhir.get(f"/Patient/{patient['id']}/$everything", start="last week").status_code == 400


def test_unknown_patient_is_404_and_deleted_patient_is_410(fhir, patient):
    assert fhir.get("/Patient/nobody/$everything").status_code == 404
    fhir.delete(f"/Patient/{patient['id']}")
    assert fhir.get(f"/Patient/{patient['id']}/$everything").status_code == 410


def test_type_level_everything_covers_every_patient(fhir, record):
    refs = [ref for page in _walk(fhir, "/Patient/$everything", _count="3") for ref in _refs(page, "match")]
    assert len(refs) == len(set(refs))
    assert {_ref(record[k]) for k in ("patient", "other", "obs", "other_obs", "encounter")} <= set(refs)
    assert _ref(record["practitioner"]) not in refs


def test_post_with_parameters_body_works_like_get(fhir, record):
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueCode": "Observation"}, {"name": "_count", "valueInteger": 10},
        {"name": "start", "valueDate": "2021-01-01"}]}
    response = fhir.post(f"/Patient/{record['patient']['id']}/$everything", params)
    assert response.status_code == 200, response.content
    assert _refs(response.json(), "match") == [_ref(record["obs"])]


def test_unsupported_parameter_is_reported_or_refused_when_strict(fhir, patient):
    bundle = fhir.get(f"/Patient/{patient['id']}/$everything", _offset="10").json()
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert "_offset" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    strict = fhir.get(f"/Patient/{patient['id']}/$everything", headers={"Prefer": "handling=strict"},
                      _offset="10")
    assert strict.status_code == 400


def test_encounter_everything_returns_the_encounter_compartment(fhir, record):
    response = fhir.get(f"/Encounter/{record['encounter']['id']}/$everything")
    assert response.status_code == 200, response.content
    bundle = response.json()
    assert set(_refs(bundle, "match")) == {_ref(record[k]) for k in ("encounter", "obs", "order")}
    assert {_ref(record[k]) for k in ("patient", "org", "location", "medication", "practitioner")} == set(
        _refs(bundle, "include"))
    assert fhir.get("/Encounter/$everything").status_code == 404  # instance level only


def test_everything_answers_xml_too(fhir, record):
    response = fhir.get(f"/Patient/{record['patient']['id']}/$everything", _format="xml")
    assert response.status_code == 200
    assert b"<Bundle" in response.content and b"<Practitioner" in response.content


def test_count_zero_answers_the_total_only(fhir, record):
    bundle = fhir.get(f"/Patient/{record['patient']['id']}/$everything", _count="0").json()
    assert bundle["total"] == 4 and "entry" not in bundle


def test_every_care_date_parameter_is_a_date_parameter_of_a_patient_compartment_type():
    members = set(member_types("Patient"))
    for rtype, code in CARE_DATE.items():
        assert rtype in members, rtype
        param = registry().get(rtype, code)
        assert param is not None and param.type == "date", (rtype, code)
    assert care_date_param("Observation") == "date"
    assert care_date_param("Patient") is None
