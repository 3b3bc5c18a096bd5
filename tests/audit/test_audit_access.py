"""Who may read the audit trail, what the events say about the token, and that no token is in them.

https://profiles.ihe.net/ITI/BALP/ and https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html --
`system/AuditEvent.rs` or staff with `user/AuditEvent.rs` read the whole trail; a patient reads
the events about their own record; nobody else reads any.
"""
from __future__ import annotations

import json

import pytest
from django.db import connection

from fhir_api.store.models import Resource, ResourceVersion
from smart_auth.models import TokenContext
from tests.access_tokens import bearer, make_client, make_user, mint
from tests.conftest import new_patient

pytestmark = [pytest.mark.django_db, pytest.mark.auth_on]


def _events() -> list[dict]:
    return [json.loads(d) for d in Resource.objects.filter(resource_type="AuditEvent").order_by("id")
            .values_list("data", flat=True)]


@pytest.fixture
def two_patients(fhir):
    admin = mint("system/*.cruds")
    ids = [fhir.post("/Patient", new_patient(), headers=bearer(admin)).json()["id"] for _ in range(2)]
    return ids


def test_a_token_read_names_the_user_client_and_purpose_and_never_the_token(fhir, two_patients):
    pid = two_patients[0]
    doctor = make_user("dr.who")
    client = make_client("Chart App")
    token = mint("user/*.rs", user=doctor, fhir_user="Practitioner/doc-1", client=client)
    TokenContext.objects.filter(fhir_user="Practitioner/doc-1").update(purpose_of_use="TREAT")
    assert fhir.get(f"/Patient/{pid}", headers=bearer(token)).status_code == 200
    event = [e for e in _events() if e["subtype"][0]["code"] == "read"][-1]
    user = next(a for a in event["agent"] if a.get("requestor"))
    assert user["who"] == {"reference": "Practitioner/doc-1"}
    assert user["type"]["coding"][0]["code"] == "IRCP"
    client_agent = next(a for a in event["agent"] if a["type"]["coding"][0]["code"] == "110153")
    assert client_agent["who"]["identifier"]["value"] == client.client_id
    assert event["purposeOfEvent"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
    # No token (nor a piece of one) anywhere in the audit trail, even from a refused request.
    fhir.get(f"/Patient/{pid}", headers=bearer(token + "x"))
    fhir.get(f"/Patient/{pid}?access_token={token}")
    everything = "".join(Resource.objects.filter(resource_type="AuditEvent").values_list("data", flat=True))
    assert token not in everything and token[:16] not in everything


def test_a_missing_or_bad_token_is_recorded_as_a_refusal(fhir, two_patients):
    fhir.get(f"/Patient/{two_patients[0]}")
    fhir.get(f"/Patient/{two_patients[0]}", headers=bearer("not-a-token"))
    refused = [e for e in _events() if e["outcome"] == "4"]
    assert len(refused) == 2 and all(e["outcomeDesc"].startswith("401") for e in refused)


def test_the_system_scope_searches_the_trail_by_patient_agent_entity_date_type_subtype_outcome(fhir, two_patients):
    pid = two_patients[0]
    reader = make_client("Reader")
    token = mint("system/Patient.rs", client=reader)
    fhir.get(f"/Patient/{pid}", headers=bearer(token))
    fhir.get("/Patient/missing", headers=bearer(token))
    auditor = bearer(mint("system/AuditEvent.rs"))

    def total(**params) -> int:
        response = fhir.get("/AuditEvent", headers=auditor, _total="accurate", **params)
        assert response.status_code == 200, response.content
        return response.json()["total"]

    assert total(patient=pid) == 2  # its create and the read
    assert total(patient=pid, subtype="read") == 1
    assert total(**{"agent:identifier": f"urn:ietf:params:oauth:client-id|{reader.client_id}"}) == 2
    assert total(entity=f"Patient/{pid}", subtype="read") == 1
    assert total(type="http://terminology.hl7.org/CodeSystem/audit-event-type|rest", outcome="4") == 1
    assert total(date="ge2020-01-01", subtype="create") == 2
    newest = fhir.get("/AuditEvent", headers=auditor, _sort="-date").json()["entry"]
    dates = [e["resource"]["recorded"] for e in newest]
    assert dates == sorted(dates, reverse=True)


def test_a_patient_reads_only_the_audit_trail_of_their_own_record(fhir, two_patients):
    mine, theirs = two_patients
    system = bearer(mint("system/*.rs"))
    for pid in (mine, theirs):
        fhir.get(f"/Patient/{pid}", headers=system)
    me = bearer(mint("patient/AuditEvent.rs patient/Patient.rs", patient=mine))
    bundle = fhir.get("/AuditEvent", headers=me, _total="accurate").json()
    assert bundle["total"] >= 2
    for entry in bundle["entry"]:
        refs = [e["what"].get("reference") for e in entry["resource"].get("entity", ())]
        refs += [a["who"].get("reference") for a in entry["resource"]["agent"]]
        assert f"Patient/{mine}" in refs and f"Patient/{theirs}" not in refs
    other_event = fhir.get("/AuditEvent", headers=system, patient=theirs).json()["entry"][0]["resource"]["id"]
    assert fhir.get(f"/AuditEvent/{other_event}", headers=me).status_code == 404


def test_the_whole_trail_is_for_staff_and_system_clients_only(fhir, two_patients):
    doctor = make_user("dr.no")
    assert fhir.get("/AuditEvent", headers=bearer(mint("user/AuditEvent.rs", user=doctor,
                                                         fhir_user="Practitioner/x"))).status_code == 403
    assert fhir.get("/AuditEvent", headers=bearer(mint("patient/Patient.rs", patient=two_patients[0]))).status_code == 403
    staff = make_user("auditor", staff=True)
    response = fhir.get("/AuditEvent", headers=bearer(mint("user/AuditEvent.rs", user=staff)), _total="accurate")
    assert response.status_code == 200 and response.json()["total"] >= 2


def test_the_database_refuses_update_and_delete_of_audit_rows(fhir, two_patients):
    """PostgreSQL and SQLite alike (triggers of fhir_api migrations 0002 and 0004)."""
    from django.db import DatabaseError, transaction

    pk = Resource.objects.filter(resource_type="AuditEvent").values_list("pk", flat=True).first()
    # AuditEvents have no version row (their one version is the current row), but the trigger
    # still guards the version rows that earlier releases wrote for them.
    assert not ResourceVersion.objects.filter(resource_type="AuditEvent").exists()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO fhir_api_resourceversion (resource_id, resource_type, logical_id, version_id,"
                       " last_updated, deleted, method, data) SELECT id, resource_type, logical_id, version_id,"
                       " last_updated, deleted, 'POST', data FROM fhir_api_resource WHERE id = %s", [pk])
    for sql in ("UPDATE fhir_api_resource SET data = '{}' WHERE id = %s",
                "DELETE FROM fhir_api_resource WHERE id = %s",
                "UPDATE fhir_api_resourceversion SET data = '{}' WHERE resource_id = %s",
                "DELETE FROM fhir_api_resourceversion WHERE resource_id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [pk])
    # Other resources are not affected by the trigger.
    other = Resource.objects.exclude(resource_type="AuditEvent").values_list("pk", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE fhir_api_resource SET last_updated = last_updated WHERE id = %s", [other])
