"""Answers that were wrong or unsafe before issue 13, each pinned by a regression test.

https://hl7.org/fhir/R4/http.html (history is read-only, versionId, mime types, OPTIONS),
https://hl7.org/fhir/R4/http.html#transaction (one resource per entry, GET entries),
https://hl7.org/fhir/R4/datatypes.html#id (ids), https://hl7.org/fhir/R4/resource.html#Meta.
"""
from __future__ import annotations

import pytest

from fhir_api.store.models import Resource
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def _tx(*entries):
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _outcome_text(response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


# -- history is read-only ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["delete", "patch", "put", "post"])
@pytest.mark.parametrize("suffix", ["/_history", "/_history/1"])
def test_writes_on_history_urls_are_405_and_change_nothing(fhir, patient, method, suffix):
    path = f"/Patient/{patient['id']}{suffix}"
    if method == "delete":
        response = fhir.delete(path)
    else:
        body = '[{"op":"replace","path":"/gender","value":"female"}]' if method == "patch" else patient
        ctype = "application/json-patch+json" if method == "patch" else "application/fhir+json"
        response = fhir.send(method.upper(), path, body, content_type=ctype)
    assert response.status_code == 405
    assert "OperationOutcome" in response.content.decode()
    assert "GET" in response["Allow"]
    current = fhir.get(f"/Patient/{patient['id']}")
    assert current.status_code == 200
    assert current.json()["meta"]["versionId"] == "1"
    assert current.json()["gender"] == "male"


@pytest.mark.parametrize("path", ["", "/metadata", "/Patient", "/Patient/x", "/Patient/x/_history",
                                  "/Patient/x/_history/1", "/Patient/$validate", "/_history", "/Patient/_search"])
def test_options_on_a_fhir_url_answers_200_with_allow(client, path):
    response = client.options("/fhir" + path)
    assert response.status_code == 200
    allow = {m.strip() for m in response["Allow"].split(",")}
    assert {"GET", "OPTIONS"} <= allow or {"POST", "OPTIONS"} <= allow


def test_options_allow_lists_what_the_url_takes(client):
    instance = {m.strip() for m in client.options("/fhir/Patient/x")["Allow"].split(",")}
    assert instance == {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"}
    history = {m.strip() for m in client.options("/fhir/Patient/x/_history")["Allow"].split(",")}
    assert history == {"GET", "HEAD", "OPTIONS"}


# -- versionId is an id, Unicode digits ---------------------------------------------------------


def test_vread_of_an_unknown_version_id_is_404(fhir, patient):
    for version in ("abc", "²", "1.5", "99999999999999999999999"):
        response = fhir.get(f"/Patient/{patient['id']}/_history/{version}")
        assert response.status_code == 404, version


@pytest.mark.parametrize("etag", ['W/"abc"', '"²"', "W/\"1.0\""])
def test_if_match_with_a_version_never_assigned_is_412(fhir, patient, etag):
    response = fhir.put(f"/Patient/{patient['id']}", patient, headers={"If-Match": etag})
    assert response.status_code == 412
    assert fhir.delete(f"/Patient/{patient['id']}", headers={"If-Match": etag}).status_code == 412


def test_unicode_digits_in_count_are_400(fhir, patient):
    for path in ("/Patient", f"/Patient/{patient['id']}/_history", "/_history", "/Patient/_history"):
        response = fhir.get(path, _count="²")
        assert response.status_code == 400, path
        assert "_count" in _outcome_text(response)


def test_count_with_many_digits_is_capped_not_an_error(fhir, patient):
    assert fhir.get("/Patient", _count="9" * 40).status_code == 200


# -- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", [".", "..", "..."])
def test_ids_made_only_of_dots_are_refused(fhir, logical_id):
    body = new_patient(id=logical_id)
    response = fhir.put(f"/Patient/{logical_id}", body)
    assert response.status_code == 400
    assert not Resource.objects.filter(logical_id=logical_id).exists()


def test_ids_with_dots_among_other_characters_are_fine(fhir):
    assert fhir.put("/Patient/a.b", new_patient(id="a.b")).status_code == 201


# -- transactions -------------------------------------------------------------------------------


def test_two_entries_with_the_same_if_none_exist_are_400_naming_both(fhir):
    criteria = "identifier=http://hospital.example/mrn|777"
    entry = {"resource": new_patient(), "request": {"method": "POST", "url": "Patient", "ifNoneExist": criteria}}
    response = fhir.post("", _tx(entry, {"resource": {"resourceType": "Observation", "status": "final",
                                                     "code": {"text": "x"}},
                                        "request": {"method": "POST", "url": "Observation"}}, entry))
    assert response.status_code == 400
    text = _outcome_text(response)
    assert "Bundle.entry[0]" in text and "Bundle.entry[2]" in text
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0


def test_two_conditional_updates_with_the_same_criteria_are_400_naming_both(fhir):
    url = "Patient?identifier=http://hospital.example/mrn|778"
    entry = {"resource": new_patient(), "request": {"method": "PUT", "url": url}}
    response = fhir.post("", _tx(entry, entry))
    assert response.status_code == 400
    text = _outcome_text(response)
    assert "Bundle.entry[0]" in text and "Bundle.entry[1]" in text
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0


def test_the_same_criteria_written_in_another_order_are_still_duplicates(fhir):
    a = {"resource": new_patient(), "request": {"method": "POST", "url": "Patient",
                                                "ifNoneExist": "family=x&gender=male"}}
    b = {"resource": new_patient(), "request": {"method": "POST", "url": "Patient",
                                                "ifNoneExist": "gender=male&family=x"}}
    assert fhir.post("", _tx(a, b)).status_code == 400


def test_two_entries_with_the_same_full_url_are_400_naming_both(fhir):
    urn = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    entry = {"fullUrl": urn, "resource": new_patient(), "request": {"method": "POST", "url": "Patient"}}
    response = fhir.post("", _tx(entry, entry))
    assert response.status_code == 400
    text = _outcome_text(response)
    assert "Bundle.entry[0]" in text and "Bundle.entry[1]" in text and urn in text
    assert Resource.objects.exclude(resource_type="AuditEvent").count() == 0


def test_get_entry_search_keeps_a_urn_uuid_search_value_and_its_self_link(fhir):
    mine = new_patient(identifier=[{"system": "urn:uuid:5e1c7e1a-8d1e-4b5c-9f4e-2a2b3c4d5e6f", "value": "ORD"}])
    fhir.post("/Patient", mine)
    fhir.post("/Patient", new_patient())  # another Patient that must not be found
    query = "Patient?identifier=urn:uuid:5e1c7e1a-8d1e-4b5c-9f4e-2a2b3c4d5e6f|ORD"
    new = {"fullUrl": "urn:uuid:0f0f0f0f-1111-4222-8333-444455556666", "resource": new_patient(),
           "request": {"method": "POST", "url": "Patient"}}
    response = fhir.post("", _tx(new, {"request": {"method": "GET", "url": query}}))
    assert response.status_code == 200, response.content
    searchset = response.json()["entry"][1]["resource"]
    assert searchset["total"] == 1
    assert searchset["entry"][0]["resource"]["identifier"][0]["value"] == "ORD"
    self_link = next(link["url"] for link in searchset["link"] if link["relation"] == "self")
    assert "identifier=urn" in self_link


# -- raw UTF-8 in the query string --------------------------------------------------------------


def test_raw_utf8_in_a_query_string_finds_what_percent_encoding_finds(fhir, client):
    fhir.post("/Patient", new_patient(name=[{"family": "Zoë"}]))
    raw = client.get("/fhir/Patient?name:exact=Zoë")  # the test client passes it on as WSGI does
    encoded = client.get("/fhir/Patient?name:exact=Zo%C3%AB")
    assert raw.status_code == encoded.status_code == 200
    assert raw.json()["total"] == encoded.json()["total"] == 1


# -- history, paging links, $validate, error texts ---------------------------------------------


def test_history_says_201_for_a_version_created_by_put(fhir):
    assert fhir.put("/Patient/put-made", new_patient(id="put-made")).status_code == 201
    assert fhir.put("/Patient/put-made", new_patient(id="put-made", gender="female")).status_code == 200
    fhir.delete("/Patient/put-made")
    assert fhir.put("/Patient/put-made", new_patient(id="put-made")).status_code == 201
    entries = fhir.get("/Patient/put-made/_history").json()["entry"]
    statuses = [e["response"]["status"] for e in entries]  # newest first
    assert statuses == ["201 Created", "204 No Content", "200 OK", "201 Created"]


def test_xml_search_paging_links_keep_format_xml(fhir):
    for _ in range(3):
        fhir.post("/Patient", new_patient())
    response = fhir.get("/Patient", _count="1", _format="xml")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'relation value="next"' in text.replace("\n", "")
    next_url = text.split('<relation value="next"/>')[1].split('<url value="')[1].split('"')[0]
    assert "_format=xml" in next_url


def test_validate_update_without_a_body_id_reports_no_false_version_conflict(fhir, patient):
    body = new_patient()
    response = fhir.post(f"/Patient/{patient['id']}/$validate?mode=update", body, headers={"If-Match": 'W/"1"'})
    assert response.status_code == 200
    issues = response.json()["issue"]
    assert not any(i["code"] == "conflict" for i in issues), issues
    assert any(i["code"] == "required" for i in issues)
    assert "None" not in response.content.decode()


@pytest.mark.parametrize("body, path", [
    ({"name": [{"family": "x"}]}, "/Patient"),
    ({"resourceType": "Bundle"}, ""),
])
def test_error_texts_never_show_python_none(fhir, body, path):
    response = fhir.post(path, body)
    assert response.status_code == 400
    assert "None" not in _outcome_text(response)


def test_if_match_on_a_resource_that_does_not_exist_shows_no_none(fhir):
    response = fhir.put("/Patient/nobody", new_patient(id="nobody"), headers={"If-Match": 'W/"1"'})
    assert response.status_code == 412
    assert "None" not in _outcome_text(response)


# -- content types and the CapabilityStatement ---------------------------------------------


@pytest.mark.parametrize("accept, expected", [
    ("application/json", "application/json"),
    ("application/xml", "application/xml"),
    ("application/fhir+json", "application/fhir+json"),
    ("application/fhir+xml", "application/fhir+xml"),
])
def test_content_type_follows_the_accepted_type(fhir, patient, accept, expected):
    for path in (f"/Patient/{patient['id']}", "/Patient", "/metadata", "/Patient/nobody"):
        response = fhir.get(path, headers={"Accept": accept})
        assert response["Content-Type"].split(";")[0] == expected, path


def test_metadata_carries_an_etag_that_is_stable(fhir):
    first, second = fhir.get("/metadata"), fhir.get("/metadata")
    assert first["ETag"].startswith('W/"')
    assert first["ETag"] == second["ETag"]
    assert fhir.get("/metadata", _format="xml")["ETag"] != first["ETag"]  # another representation
