"""SearchParameter resources written to the server, and `$reindex`.

https://hl7.org/fhir/R4/searchparameter.html -- a stored SearchParameter is a search
parameter of the server: active for new writes at once, for resources stored before it
after `$reindex`; deleting it removes it. The registry of every server process follows
the store (fhir_search.stored_params, fhir_search.watch).
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.test import Client
from django.core.management import call_command

from fhir_api.store import repository
from tests.conftest import FhirClient, finish_job
from fhir_api.store.models import Resource
from fhir_search import stored_params
from fhir_search.models import TokenIndex
from fhir_search.registry import registry
from fhir_search.watch import StoreWatch
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db

EYE = "http://example.org/fhir/StructureDefinition/eye-colour"
STRICT = {"Prefer": "handling=strict"}


def eye_colour_parameter(**changes) -> dict:
    return {
        "resourceType": "SearchParameter", "url": "http://example.org/fhir/SearchParameter/eye-colour",
        "name": "EyeColour", "status": "active", "description": "The colour of the patient's eyes",
        "code": "eye-colour", "base": ["Patient"], "type": "token",
        "expression": f"Patient.extension.where(url='{EYE}').value", **changes,
    }


def patient_with_eyes(colour: str) -> str:
    return store({"resourceType": "Patient", "extension": [{"url": EYE, "valueCode": colour}]})


def parameters(kicked) -> dict:
    response = finish_job(FhirClient(Client()), kicked)
    assert response.status_code == 200, response.content
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value"))
            for p in response.json()["parameter"]}


def test_a_stored_search_parameter_applies_to_new_writes_at_once(fhir, search):
    response = fhir.post("/SearchParameter", eye_colour_parameter())
    assert response.status_code == 201, response.content
    blue = patient_with_eyes("blue")
    patient_with_eyes("brown")
    assert search.ids("/Patient", {"eye-colour": "blue"}, headers=STRICT) == [blue]


def test_resources_stored_before_are_found_after_type_reindex(fhir, search):
    before = patient_with_eyes("green")
    store(eye_colour_parameter())
    assert search.ids("/Patient", {"eye-colour": "green"}) == []
    result = parameters(fhir.post("/Patient/$reindex", {"resourceType": "Parameters"}))
    assert result["resources"] == 1 and result["indexRows"] > 0 and result["complete"] is True
    assert search.ids("/Patient", {"eye-colour": "green"}) == [before]


def test_system_reindex_takes_types_and_a_limit_to_resume_from(fhir, search):
    olders = [patient_with_eyes("grey") for _ in range(3)]
    store({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    store(eye_colour_parameter())
    first = parameters(fhir.post("/$reindex", {"resourceType": "Parameters", "parameter": [
        {"name": "type", "valueString": "Patient"}, {"name": "limit", "valueInteger": 2},
        {"name": "batchSize", "valueInteger": 2}]}))
    assert first["resources"] == 2 and first["complete"] is False
    rest = parameters(fhir.post("/$reindex", {"resourceType": "Parameters", "parameter": [
        {"name": "type", "valueString": "Patient"}, {"name": "fromId", "valueInteger": first["resumeFromId"]}]}))
    assert rest["resources"] == 1 and rest["complete"] is True  # only the Patients were visited
    assert search.idset("/Patient", {"eye-colour": "grey"}) == set(olders)


def test_reindex_changes_state_so_get_is_refused(fhir):
    assert fhir.get("/Patient/$reindex").status_code == 405


def test_a_post_without_a_body_is_a_call_without_parameters(fhir, search):
    before = patient_with_eyes("hazel")
    store(eye_colour_parameter())
    response = fhir.client.generic("POST", "/fhir/Patient/$reindex")  # no body, no Content-Type: as `curl -X POST $B/Patient/\$reindex` sends it
    assert parameters(response)["resources"] == 1
    assert search.ids("/Patient", {"eye-colour": "hazel"}) == [before]


def test_reindex_checks_its_parameters(fhir):
    response = fhir.post("/$reindex", {"resourceType": "Parameters", "parameter": [
        {"name": "type", "valueString": "Nonsense"}]})
    assert response.status_code == 400
    response = fhir.post("/$reindex", {"resourceType": "Parameters", "parameter": [
        {"name": "limit", "valueString": "many"}]})
    assert response.status_code == 400


def test_the_reindex_command_uses_stored_parameters_too(search):
    before = patient_with_eyes("hazel")
    store(eye_colour_parameter())
    call_command("reindex", "Patient", "--no-progress", stdout=StringIO())
    assert search.ids("/Patient", {"eye-colour": "hazel"}) == [before]


def test_deleting_the_search_parameter_removes_it_and_its_index_rows(fhir, search):
    sp = store(eye_colour_parameter())
    patient_with_eyes("blue")
    assert TokenIndex.objects.filter(code="eye-colour").exists()
    assert fhir.delete(f"/SearchParameter/{sp}").status_code in (200, 204)
    search.bundle("/Patient", {"eye-colour": "blue"}, status=400, headers=STRICT)
    assert not TokenIndex.objects.filter(code="eye-colour").exists()


def test_an_update_changes_the_expression_for_new_writes(search):
    sp = store(eye_colour_parameter())
    repository.update("SearchParameter", sp, {**eye_colour_parameter(
        expression="Patient.extension.where(url='http://example.org/iris').value"), "id": sp})
    iris = store({"resourceType": "Patient", "extension": [{"url": "http://example.org/iris", "valueCode": "blue"}]})
    patient_with_eyes("blue")
    assert search.ids("/Patient", {"eye-colour": "blue"}) == [iris]


def test_a_parameter_the_server_cannot_use_is_stored_but_inactive_and_reindex_says_why(fhir, search):
    # Valid resources all the same (R4's own examples have XPath-only SearchParameters).
    bad = fhir.post("/SearchParameter", eye_colour_parameter(expression="Patient.nonsense(1)"))
    assert bad.status_code == 201
    patient_with_eyes("blue")
    search.bundle("/Patient", {"eye-colour": "blue"}, status=400, headers=STRICT)
    report = finish_job(fhir, fhir.post("/Patient/$reindex", {"resourceType": "Parameters"})).json()["parameter"]
    why = [p["valueString"] for p in report if p["name"] == "inactiveSearchParameter"]
    expected = (f"SearchParameter/{bad.json()['id']}: SearchParameter.expression: "
                "'Patient.nonsense(1)' cannot be evaluated: Not implemented: nonsense")
    assert why == [expected]


def test_a_parameter_on_an_unknown_resource_type_is_refused_by_its_required_binding(fhir):
    response = fhir.post("/SearchParameter", eye_colour_parameter(base=["Spaceship"]))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["SearchParameter.base[0]"]


@pytest.mark.parametrize("changes", [
    {"expression": "Observation.code"},  # no path for its base
    {"status": "retired"},
    {"type": "special"},
])
def test_parameters_that_cannot_be_used_are_not_active(search, changes):
    store(eye_colour_parameter(**changes))
    patient_with_eyes("blue")
    search.bundle("/Patient", {"eye-colour": "blue"}, status=400, headers=STRICT)


def test_a_stored_parameter_replaces_an_official_one_until_deleted(search):
    official = registry().get("Patient", "family").url
    sp = store({**eye_colour_parameter(), "url": "http://example.org/fhir/SearchParameter/family-given",
                "code": "family", "type": "string", "expression": "Patient.name.given"})
    pid = store({"resourceType": "Patient", "name": [{"family": "Smith", "given": ["Xavier"]}]})
    assert search.ids("/Patient", {"family": "xavier"}) == [pid]
    repository.delete("SearchParameter", sp)
    assert registry().get("Patient", "family").url == official


def test_the_capability_statement_lists_stored_parameters(fhir):
    store(eye_colour_parameter())
    statement = fhir.get("/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    entry = next(p for p in patient["searchParam"] if p["name"] == "eye-colour")
    assert entry["definition"] == eye_colour_parameter()["url"] and entry["type"] == "token"
    assert any(p["name"] == "_filter" for p in patient["searchParam"])


def test_a_new_process_loads_stored_parameters_on_first_use(search, monkeypatch):
    store(eye_colour_parameter())
    blue = patient_with_eyes("blue")
    registry().replace_custom([])  # what a process that just started knows
    monkeypatch.setattr(stored_params, "_watch", StoreWatch("SearchParameter"))
    assert search.ids("/Patient", {"eye-colour": "blue"}) == [blue]


def test_a_parameter_written_by_another_process_is_seen_after_the_refresh_interval(search, settings):
    settings.FHIR_DEFINITIONS_REFRESH = 0
    search.ids("/Patient")  # this process has loaded the (empty) set
    # Another server process stores a SearchParameter: no signal reaches this one.
    Resource.objects.create(resource_type="SearchParameter", logical_id="elsewhere", version_id=1,
                            last_updated="2024-01-01T00:00:00Z", data=repository.jsonio.dumps(
                                {**eye_colour_parameter(), "id": "elsewhere"}).decode())
    search.bundle("/Patient", {"eye-colour": "blue"}, headers=STRICT)  # known: no 400
