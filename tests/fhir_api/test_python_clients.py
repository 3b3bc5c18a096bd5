"""The README's "Using it from Python and JavaScript" examples, run against a live server.

fhirpy (Beda Software's client) and fhirclient (SMART on FHIR's Python client, R4 models)
talk HTTP to pytest-django's live server, as an integrator's code would.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_fhirpy_creates_reads_searches_updates_and_deletes(live_server):
    from fhirpy import SyncFHIRClient

    client = SyncFHIRClient(f"{live_server.url}/fhir")
    patient = client.resource("Patient", name=[{"family": "Chalmers", "given": ["Peter"]}], gender="male",
                              birthDate="1974-12-25")
    patient.save()                                       # POST /Patient
    assert patient.id and patient["meta"]["versionId"] == "1"
    found = client.resources("Patient").search(family="chalmers", birthdate__ge="1970").fetch_all()
    assert [p.id for p in found] == [patient.id]
    patient["gender"] = "other"
    patient.save()                                       # PUT /Patient/<id>
    again = client.reference("Patient", patient.id).to_resource()
    assert again["gender"] == "other" and again["meta"]["versionId"] == "2"
    observation = client.resource("Observation", status="final", code={"text": "Heart rate"},
                                  subject=patient.to_reference(), valueQuantity={"value": 72, "unit": "/min"})
    observation.save()
    assert client.resources("Observation").search(subject=patient.to_reference().reference).count() == 1
    patient.delete()                                     # DELETE /Patient/<id>
    assert client.resources("Patient").search(_id=patient.id).count() == 0


def test_fhirpy_sees_errors_as_operation_outcomes(live_server):
    from fhirpy import SyncFHIRClient
    from fhirpy.base.exceptions import OperationOutcome

    client = SyncFHIRClient(f"{live_server.url}/fhir")
    with pytest.raises(OperationOutcome) as raised:
        client.resource("Patient", favouriteColour="blue").save()   # not an R4 element: 422
    assert "favouriteColour" in str(raised.value)


def test_smart_fhirclient_reads_and_searches_with_r4_models(live_server):
    from fhirclient import client
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "readme-example", "api_base": f"{live_server.url}/fhir"})
    created = Patient({"name": [{"family": "Smith", "given": ["Zoë"]}], "gender": "female"})
    answer = created.create(smart.server)                # POST /Patient
    patient_id = answer["id"]
    patient = Patient.read(patient_id, smart.server)     # GET /Patient/<id>
    assert patient.name[0].given == ["Zoë"]
    bundle = Patient.where(struct={"name": "zoe"}).perform(smart.server)   # case and accents folded
    assert [entry.resource.id for entry in bundle.entry] == [patient_id]


def test_smart_fhirclient_finds_the_authorization_server_in_the_capability_statement(live_server, settings):
    from fhirclient import client

    settings.FHIR_AUTH_REQUIRED = True
    smart = client.FHIRClient(settings={"app_id": "readme-example", "api_base": f"{live_server.url}/fhir",
                                        "redirect_uri": "http://127.0.0.1:9/callback"})
    assert smart.prepare() is False                      # not authorized yet: it reads /metadata
    url = smart.authorize_url
    assert url.startswith(f"{live_server.url}/auth/authorize?")
    assert "client_id=readme-example" in url and f"aud={live_server.url}/fhir".replace(":", "%3A").replace(
        "/", "%2F") in url
