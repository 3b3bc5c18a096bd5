"""Content negotiation: JSON, XML, _format, _pretty (https://hl7.org/fhir/R4/http.html#mime-type)."""
from __future__ import annotations

import pytest

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db

XML_PATIENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <name><family value="Dupont"/><given value="Ren\xc3\xa9e"/></name>
  <gender value="female"/>
  <birthDate value="1980-02-03"/>
</Patient>"""


def test_accept_xml_returns_xml(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+xml")
    assert b'<Patient xmlns="http://hl7.org/fhir">' in response.content
    assert b'<family value="Chalmers"/>' in response.content


def test_format_parameter_overrides_accept(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}", headers={"Accept": "application/fhir+json"}, _format="xml")
    assert response["Content-Type"].startswith("application/fhir+xml")
    response = fhir.get(f"/Patient/{patient['id']}", _format="application/fhir+json")
    assert response.json()["id"] == patient["id"]


def test_pretty_json_is_indented(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}", _pretty="true")
    assert b'\n  "resourceType"' in response.content


def test_unacceptable_accept_is_406(fhir, patient):
    response = fhir.get(f"/Patient/{patient['id']}", headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_format_is_406(fhir, patient):
    assert fhir.get(f"/Patient/{patient['id']}", _format="yaml").status_code == 406


def test_browser_accept_gets_json(fhir, patient):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = fhir.get(f"/Patient/{patient['id']}", headers={"Accept": accept})
    assert response["Content-Type"].startswith("application/fhir+json")


def test_create_from_xml_body(fhir):
    response = fhir.post("/Patient", XML_PATIENT, content_type="application/fhir+xml")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == [{"family": "Dupont", "given": ["Renée"]}]
    assert body["birthDate"] == "1980-02-03"


def test_xml_with_dtd_is_refused(fhir):
    evil = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
            b'<Patient xmlns="http://hl7.org/fhir"><gender value="&lol;"/></Patient>')
    response = fhir.post("/Patient", evil, content_type="application/fhir+xml")
    assert response.status_code == 400


def test_errors_follow_requested_format(fhir):
    response = fhir.get("/Patient/missing", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 404
    assert b"<OperationOutcome" in response.content


def test_xml_update_round_trip(fhir, patient):
    xml = fhir.get(f"/Patient/{patient['id']}", _format="xml").content
    response = fhir.put(f"/Patient/{patient['id']}", xml, content_type="application/fhir+xml")
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "meta"} == {k: v for k, v in patient.items() if k != "meta"}


def test_json_content_type_application_json_accepted(fhir):
    response = fhir.post("/Patient", new_patient(), content_type="application/json")
    assert response.status_code == 201


def test_search_and_history_bundles_in_xml(fhir, patient):
    search = fhir.get("/Patient", family="chal", _format="xml")
    assert search.status_code == 200
    assert b"<Bundle" in search.content and b"<Patient" in search.content
    history = fhir.get(f"/Patient/{patient['id']}/_history", _format="xml", _pretty="true")
    assert history.status_code == 200
    assert b'<type value="history"/>' in history.content
