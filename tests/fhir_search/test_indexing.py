"""The index follows every write: creates, updates and deletes, bulk indexing, reindexing.

https://hl7.org/fhir/R4/search.html -- and every R4 example indexes without an error.
"""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from django.core.management import call_command

from fhir_api.store import repository
from fhir_api.store.models import Resource
from fhir_search.indexing import index_many, rows_for
from fhir_search.models import StringIndex, TokenIndex
from tests.fhir_api.examples import examples
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def test_update_replaces_the_index_rows(search):
    pid = store({"resourceType": "Patient", "name": [{"family": "Before"}]})
    repository.update("Patient", pid, {"resourceType": "Patient", "id": pid, "name": [{"family": "After"}]})
    assert search.ids("/Patient", {"family": "before"}) == []
    assert search.ids("/Patient", {"family": "after"}) == [pid]


def test_deleted_resources_have_no_rows_and_never_match(search):
    pid = store({"resourceType": "Patient", "name": [{"family": "Gone"}], "gender": "male"})
    repository.delete("Patient", pid)
    row = Resource.objects.get(logical_id=pid)
    assert not StringIndex.objects.filter(resource=row).exists()
    assert search.ids("/Patient", {"gender": "male"}) == []
    assert search.ids("/Patient", {"_id": pid}) == []
    assert search.ids("/Patient", {"family:missing": "true"}) == []


def test_a_rolled_back_write_leaves_no_index_rows(search):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        store({"resourceType": "Patient", "name": [{"family": "Phantom"}]})
        raise RuntimeError
    assert search.ids("/Patient", {"family": "phantom"}) == []


def test_index_many_replaces_rows_of_a_batch(search):
    a = store({"resourceType": "Patient", "name": [{"family": "Alpha"}]})
    b = store({"resourceType": "Patient", "name": [{"family": "Beta"}]})
    StringIndex.objects.all().delete()
    assert search.ids("/Patient", {"family": "alpha"}) == []
    rows = list(Resource.objects.filter(logical_id__in=[a, b]))
    written = index_many([(r, orjson.loads(r.data)) for r in rows])
    assert written > 0
    assert search.ids("/Patient", {"family": "alpha"}) == [a]
    index_many([(r, orjson.loads(r.data)) for r in rows])  # again: replaced, not doubled
    assert StringIndex.objects.filter(code="family").count() == 2


def test_reindex_command_rebuilds_and_resumes(search):
    ids = [
        store({"resourceType": "Patient", "name": [{"family": f"R{i}"}], "gender": "other"}) for i in range(5)
    ]
    store({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    TokenIndex.objects.all().delete()
    StringIndex.objects.all().delete()
    out, err = io.StringIO(), io.StringIO()
    call_command("reindex", "Patient", "--batch-size", "2", stdout=out, stderr=err)
    assert "reindexed 5 resources" in out.getvalue()
    assert "--from-id" in err.getvalue()
    assert set(search.ids("/Patient", {"gender": "other"})) == set(ids)
    assert search.ids("/Observation", {"status": "final"}) == []  # not asked for
    last = Resource.objects.filter(resource_type="Observation").get().id
    call_command("reindex", "--from-id", str(last), "--no-progress", stdout=out)
    assert len(search.ids("/Observation", {"status": "final"})) == 1


def test_every_r4_example_indexes_without_errors(caplog):
    caplog.set_level(logging.WARNING, logger="fhir_search")
    total = 0
    for _name, raw in examples():
        content = orjson.loads(raw)
        row = Resource(pk=1, resource_type=content["resourceType"], logical_id="x", version_id=1)
        total += sum(len(rows) for rows in rows_for(row, content).values())
    assert total > 40000
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[:2000]
