"""Search at each level: type (GET and POST _search), system (_type), compartment.

https://hl7.org/fhir/R4/http.html#search and https://hl7.org/fhir/R4/compartmentdefinition.html
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def world():
    pat = store({"resourceType": "Patient", "name": [{"family": "Owner"}], "meta": {"tag": [{"code": "t1"}]}})
    other = store({"resourceType": "Patient", "name": [{"family": "Other"}]})
    obs = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{pat}"},
            "meta": {"tag": [{"code": "t1"}]},
        }
    )
    obs_other = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{other}"},
        }
    )
    cond = store({"resourceType": "Condition", "subject": {"reference": f"Patient/{pat}"}})
    return {"pat": pat, "other": other, "obs": obs, "obs_other": obs_other, "cond": cond}


def test_post_search_merges_form_body_and_url_parameters(fhir, world):
    response = fhir.client.post(
        "/fhir/Observation/_search?status=final", data=f"subject=Patient/{world['pat']}", content_type=FORM
    )
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [world["obs"]]


def test_post_search_wants_a_form(fhir, world):
    response = fhir.client.post("/fhir/Observation/_search", data="{}", content_type="application/fhir+json")
    assert response.status_code == 415


def test_get_on_the_type_url_searches_and_post_still_creates(fhir, search, world):
    assert search.bundle("/Patient")["type"] == "searchset"
    created = fhir.post("/Patient", {"resourceType": "Patient"})
    assert created.status_code == 201


def test_system_search_with_type_list_and_common_parameters(search, world):
    found = search.bundle("", [("_type", "Patient,Observation"), ("_tag", "t1")])
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in found["entry"]}
    assert got == {("Patient", world["pat"]), ("Observation", world["obs"])}
    assert "_type=Patient%2CObservation" in found["link"][0]["url"]


def test_system_search_with_a_parameter_of_every_listed_type(search, world):
    found = search.bundle("", [("_type", "Observation,Condition"), ("patient", world["pat"])])
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in found["entry"]}
    assert got == {("Observation", world["obs"]), ("Condition", world["cond"])}


def test_system_search_of_everything(search, world):
    assert search.bundle("", {"_id": world["obs"]})["entry"][0]["resource"]["id"] == world["obs"]
    search.bundle("", {"family": "owner"}, status=400, headers={"Prefer": "handling=strict"})


def test_system_post_search(fhir, world):
    response = fhir.client.post("/fhir/_search", data=f"_id={world['cond']}", content_type=FORM)
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [world["cond"]]


def test_compartment_search(search, world):
    found = search.ids(f"/Patient/{world['pat']}/Observation")
    assert found == [world["obs"]]
    assert search.ids(f"/Patient/{world['pat']}/Observation", {"status": "cancelled"}) == []
    everything = search.bundle(f"/Patient/{world['pat']}/*")
    assert {e["resource"]["id"] for e in everything["entry"]} == {world["obs"], world["cond"]}
    assert everything["link"][0]["url"].endswith(f"/Patient/{world['pat']}/*")


def test_compartment_of_a_type_outside_it(search, world):
    search.bundle(f"/Patient/{world['pat']}/CodeSystem", status=400)
    search.bundle(f"/Observation/{world['obs']}/Patient", status=404)


def test_strict_handling_rejects_unknown_parameters_lenient_ignores_them(search, world):
    bundle = search.bundle("/Patient", {"foo": "bar"}, status=400, headers={"Prefer": "handling=strict"})
    assert bundle["resourceType"] == "OperationOutcome"
    lenient = search.bundle("/Patient", [("foo", "bar"), ("family", "owner")])
    assert "foo" not in lenient["link"][0]["url"] and "family=owner" in lenient["link"][0]["url"]
    assert [e["resource"]["id"] for e in lenient["entry"] if e["search"]["mode"] == "match"] == [world["pat"]]
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"


def test_format_parameters_are_not_search_parameters(search, world):
    bundle = search.bundle(
        "/Patient", {"_format": "json", "_pretty": "true"}, headers={"Prefer": "handling=strict"}
    )
    assert len(bundle["entry"]) == 2


def test_xml_bundle(fhir, world):
    response = fhir.client.get("/fhir/Patient", {"_format": "xml"})
    assert response.status_code == 200
    assert b"<Bundle" in response.content and b"searchset" in response.content


def test_unknown_type_is_not_found(search):
    search.bundle("/Nonsense", status=404)


def test_not_supported_parameters_in_strict_mode(search, world):
    for name in ("_query", "_contained"):
        outcome = search.bundle("/Patient", {name: "x"}, status=400, headers={"Prefer": "handling=strict"})
        assert outcome["issue"][0]["code"] == "not-supported"
