"""How the trail is kept: the buffer, retention, and lean index rows equal to the generic ones.

https://profiles.ihe.net/ITI/BALP/ -- reads are audited through a per-process buffer; writes in
their transaction; old events leave only through `manage.py audit_retention`.
"""
from __future__ import annotations

import io
import json
import importlib
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from fhir_api.store import audit as store_audit, repository
from fhir_api.store.models import Resource, ResourceVersion
from fhir_search.audit_index import LEAN_CODES, rows_of
from fhir_search.indexing import rows_for
from fhir_search.models import DateIndex, ReferenceIndex, TokenIndex
from smart_auth.audit import balp, trail
from tests.conftest import new_patient

pytestmark = pytest.mark.django_db
SQLITE_TRIGGERS = importlib.import_module("fhir_api.migrations.0005_audit_append_only_sqlite")


def _audit_count() -> int:
    return Resource.objects.filter(resource_type="AuditEvent").count()


def test_buffered_reads_cost_no_write_until_the_flush_and_then_one_transaction(fhir, settings, monkeypatch):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    settings.FHIR_AUDIT_FLUSH_MS = 60_000
    monkeypatch.setattr(trail, "_ensure_flusher", lambda: None)  # this test flushes itself
    before = _audit_count()
    for _ in range(5):
        assert fhir.get(f"/Patient/{pid}").status_code == 200
    assert _audit_count() == before and trail.pending() == 5
    assert trail.flush() == 5
    assert _audit_count() == before + 5 and trail.pending() == 0


def test_the_buffer_is_written_at_exit(fhir, settings, monkeypatch):
    settings.FHIR_AUDIT_FLUSH_MS = 60_000
    monkeypatch.setattr(trail, "_ensure_flusher", lambda: None)
    fhir.get("/Patient/nobody")
    assert trail.pending() == 1
    trail.flush_at_exit()  # what atexit (and gunicorn's worker_exit hook) run
    assert trail.pending() == 0 and _audit_count() == 1


def test_retention_deletes_only_events_older_than_the_setting_and_records_itself(fhir, settings):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    fhir.get(f"/Patient/{pid}")
    old = Resource.objects.filter(resource_type="AuditEvent").order_by("id").first()
    # Age one event (the append-only trigger refuses this UPDATE: set it aside for the test).
    with _update_trigger_off():
        Resource.objects.filter(pk=old.pk).update(last_updated=old.last_updated - timedelta(days=40))
    out = io.StringIO()
    settings.FHIR_AUDIT_RETENTION_DAYS = None
    call_command("audit_retention", stdout=out)
    assert "kept" in out.getvalue() and Resource.objects.filter(pk=old.pk).exists()
    index_tables = (TokenIndex, ReferenceIndex, DateIndex)
    assert all(table.objects.filter(resource_id=old.pk).exists() for table in index_tables)
    settings.FHIR_AUDIT_RETENTION_DAYS = 30
    call_command("audit_retention", stdout=out)
    assert not Resource.objects.filter(pk=old.pk).exists()
    # No database constraint ties index rows to their resource (fhir_search.models): the
    # ORM's cascade takes them away with the event.
    assert not any(table.objects.filter(resource_id=old.pk).exists() for table in index_tables)
    assert Resource.objects.filter(resource_type="Patient").exists()
    events = [json.loads(d) for d in Resource.objects.filter(resource_type="AuditEvent").values_list("data", flat=True)]
    assert any(e["type"]["code"] == "110101" and e["action"] == "D" for e in events)
    assert len(events) == 2  # the read, and the retention run itself


@contextmanager
def _update_trigger_off():
    """A transaction in which UPDATE of AuditEvent rows in fhir_api_resource is not refused."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE fhir_api_resource DISABLE TRIGGER fhir_api_resource_audit_append_only")
            yield
            cursor.execute("ALTER TABLE fhir_api_resource ENABLE TRIGGER fhir_api_resource_audit_append_only")
        else:
            cursor.execute("DROP TRIGGER fhir_api_resource_audit_no_update")
            yield
            cursor.execute(SQLITE_TRIGGERS.UPDATE_TRIGGER.format(table="fhir_api_resource"))


def test_only_the_retention_transaction_passes_the_delete_trigger(fhir):
    """The retention pass ends with its transaction: a DELETE after it is refused again."""
    fhir.post("/Patient", new_patient())
    pk = Resource.objects.filter(resource_type="AuditEvent").values_list("pk", flat=True).first()
    with transaction.atomic(), store_audit._retention_pass():
        pass
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Resource.objects.filter(pk=pk).delete()
    assert Resource.objects.filter(pk=pk).exists()


@pytest.mark.parametrize("break_glass", [False, True], ids=["plain", "break-glass override"])
def test_lean_index_rows_are_the_generic_extractors_rows_for_the_same_parameters(break_glass):
    actor = balp.Actor(address="10.0.0.1", client_id="app-1", user="Patient/p1", token_id=7,
                       purpose="ETREAT" if break_glass else "TREAT", server="http://x/fhir", break_glass=break_glass)
    event = balp.rest_event(actor, "read", reference="Observation/o1/_history/2", patient="p1",
                            overridden=("Observation/o1",) if break_glass else ())
    [row] = repository.append_audit([event])
    content = json.loads(row.data)
    lean = rows_of(row, content)
    generic = rows_for(row, content)
    for table in set(lean) | set(generic):
        mine = sorted(repr(sorted(r.items())) for r in lean.get(table, []))
        theirs = sorted(repr(sorted(r.items())) for r in generic.get(table, []) if r["code"] in LEAN_CODES)
        assert mine == theirs, table.__name__


def test_the_query_entity_never_carries_a_token():
    entity = balp.query_entity("name=x&access_token=secret-value&_count=5")
    assert "secret" not in entity["description"] and "secret" not in entity["query"]


def test_an_event_the_database_refuses_does_not_hold_back_the_others(fhir, settings, monkeypatch):
    from django.db import DatabaseError

    settings.FHIR_AUDIT_FLUSH_MS = 60_000
    monkeypatch.setattr(trail, "_ensure_flusher", lambda: None)
    real = repository.append_audit

    def picky(events):
        if any(e.get("outcomeDesc") == "poison" for e in events):
            raise DatabaseError("refused")
        return real(events)

    monkeypatch.setattr(repository, "append_audit", picky)
    fhir.get("/Patient/nobody")
    trail.record({**balp.rest_event(balp.Actor(), "read"), "outcomeDesc": "poison"})
    assert trail.flush() == 2
    assert trail.pending() == 0 and _audit_count() == 1  # the good one written, the refused one logged


def test_a_database_that_refuses_everything_keeps_the_buffer_for_the_next_flush(fhir, settings, monkeypatch):
    from django.db import DatabaseError

    settings.FHIR_AUDIT_FLUSH_MS = 60_000
    monkeypatch.setattr(trail, "_ensure_flusher", lambda: None)
    fhir.get("/Patient/nobody")

    def down(events):
        raise DatabaseError("the database is restarting")

    real = repository.append_audit
    monkeypatch.setattr(repository, "append_audit", down)
    with pytest.raises(DatabaseError):
        trail.flush()
    assert trail.pending() == 1
    monkeypatch.setattr(repository, "append_audit", real)
    assert trail.flush() == 1 and _audit_count() == 1


def test_an_event_has_one_version_read_by_vread_and_history_without_a_version_row(fhir):
    pid = fhir.post("/Patient", new_patient()).json()["id"]
    event = Resource.objects.filter(resource_type="AuditEvent").order_by("-id").first()
    assert not ResourceVersion.objects.filter(resource_id=event.pk).exists()  # the current row is the version
    vread = fhir.get(f"/AuditEvent/{event.logical_id}/_history/1")
    assert vread.status_code == 200 and vread.json()["id"] == event.logical_id
    assert vread.json()["entity"][0]["what"]["reference"] == f"Patient/{pid}"
    assert fhir.get(f"/AuditEvent/{event.logical_id}/_history/2").status_code == 404
    instance = fhir.get(f"/AuditEvent/{event.logical_id}/_history").json()
    assert [e["resource"]["id"] for e in instance["entry"]] == [event.logical_id]
    assert instance["entry"][0]["request"]["method"] == "POST"
    listed = fhir.get("/AuditEvent/_history", _count="1").json()
    assert len(listed["entry"]) == 1 and any(link["relation"] == "next" for link in listed["link"])
    page_two = fhir.get(next(link["url"] for link in listed["link"] if link["relation"] == "next")
                        .split("/fhir", 1)[1]).json()
    assert page_two["entry"][0]["resource"]["id"] != listed["entry"][0]["resource"]["id"]
