"""Issue 12's examples, as a newcomer runs them with third-party clients over real HTTP.

No third-party FHIR conformance suite runs in the test suite (Touchstone is a hosted service;
Inferno and the HL7 validator CLI fetch the R4 core package from packages.fhir.org when they
run), so this is the same walk through the issue's original examples: fhirpy (Beda Software) creates resources and calls `$validate` through its
`is_valid()`, and plain `requests` shows the HTTP status and OperationOutcome a client sees. The
Django-client tests of each rule are in test_validation_bindings.py,
test_profiles_and_packages.py and test_reference_targets.py. Each error's `expression` is
also evaluated by fhirpathpy (a third-party FHIRPath engine, the port of HL7's FHIRPath.js,
with the R4 model) on the resource that was sent: it must parse and find the element.
"""
from __future__ import annotations

from typing import Any

import pytest
import requests

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
EYES = "http://example.org/ig/StructureDefinition/eyes"


@pytest.fixture
def base(live_server) -> str:
    return f"{live_server.url}/fhir"


@pytest.fixture
def client(base):
    from fhirpy import SyncFHIRClient

    return SyncFHIRClient(base)


def post(base: str, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{base}/{path}", json=body, headers=JSON, timeout=30)


def expressions(response: requests.Response, sent: dict[str, Any]) -> list[list[str]]:
    """The error issues' expressions, each one checked to find its element in `sent`."""
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    found = [i["expression"] for i in outcome["issue"] if i["severity"] == "error"]
    for expression in (e for listed in found for e in listed):
        assert fhirpath_finds(sent, expression), expression
    return found


def fhirpath_finds(resource: dict[str, Any], expression: str) -> bool:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.evaluate(resource, expression, {}, models["r4"]) != []


def test_a_misspelt_gender_is_refused_and_invalid_to_validate(base, client):
    from fhirpy.base.exceptions import OperationOutcome

    sent = {"resourceType": "Patient", "gender": "mmale"}
    response = post(base, "Patient", sent)
    assert response.status_code == 422 and expressions(response, sent) == [["Patient.gender"]]
    assert "administrative-gender" in response.json()["issue"][0]["diagnostics"]
    patient = client.resource("Patient", gender="mmale")
    assert patient.is_valid() is False  # $validate no longer says "All OK"
    with pytest.raises(OperationOutcome):
        patient.save()
    assert client.resource("Patient", gender="male").is_valid() is True


def test_a_bogus_observation_status_is_refused(base, client):
    body = {"resourceType": "Observation", "status": "bogus", "code": {"text": "weight"}}
    response = post(base, "Observation", body)
    assert response.status_code == 422 and expressions(response, body) == [["Observation.status"]]
    assert client.resources("Observation").fetch_all() == []


def test_an_extension_with_the_wrong_value_type_is_refused_once_its_definition_is_known(base, client):
    definition = client.resource(
        "StructureDefinition", id="eyes", url=EYES, name="Eyes", status="active", kind="complex-type",
        abstract=False, type="Extension", derivation="constraint",
        baseDefinition="http://hl7.org/fhir/StructureDefinition/Extension",
        context=[{"type": "element", "expression": "Patient"}],
        differential={"element": [{"id": "Extension", "path": "Extension"},
                                  {"id": "Extension.url", "path": "Extension.url", "fixedUri": EYES},
                                  {"id": "Extension.value[x]", "path": "Extension.value[x]",
                                   "type": [{"code": "string"}]}]})
    definition.save()
    sent = {"resourceType": "Patient", "extension": [{"url": EYES, "valueInteger": 3}]}
    response = post(base, "Patient", sent)
    assert response.status_code == 422
    assert expressions(response, sent) == [["Patient.extension[0].value.ofType(integer)"]]
    assert post(base, "Patient", {"resourceType": "Patient",
                                  "extension": [{"url": EYES, "valueString": "brown"}]}).status_code == 201


def test_a_null_lined_up_with_an_id_only_companion_is_refused(base):
    body = {"resourceType": "Patient", "name": [{"given": ["Ann", None], "_given": [None, {"id": "g2"}]}]}
    response = post(base, "Patient", body)
    assert response.status_code == 422 and expressions(response, body) == [["Patient.name[0].given[1]"]]


def test_expressions_and_locations_are_fhirpath(base):
    sent = {"resourceType": "Patient", "active": True, "_active": "no"}
    response = post(base, "Patient", sent)
    (issue,) = response.json()["issue"]
    assert response.status_code == 422 and issue["expression"] == issue["location"] == ["Patient.active"]
    assert fhirpath_finds(sent, "Patient.active")
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "flag", "valueBoolean": "yes"}]}
    outcome = post(base, "Parameters/$validate", parameters)
    assert outcome.status_code == 200
    errors = [i for i in outcome.json()["issue"] if i["severity"] == "error"]
    assert [(i["expression"], i["location"]) for i in errors] == [
        (["Parameters.parameter[0].value.ofType(boolean)"], ["Parameters.parameter[0].value.ofType(boolean)"])]
    assert fhirpath_finds(parameters, "Parameters.parameter[0].value.ofType(boolean)")


def test_a_reference_to_a_type_the_element_does_not_take_is_refused(base, client):
    subject = {"reference": "Practitioner/1"}
    sent = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, "subject": subject}
    response = post(base, "Observation", sent)
    assert response.status_code == 422 and expressions(response, sent) == [["Observation.subject"]]
    observation = client.resource("Observation", status="final", code={"text": "weight"}, subject=subject)
    assert observation.is_valid() is False
