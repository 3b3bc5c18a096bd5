"""The job table's life cycle: claim, checkpoints, retries, abandoned workers, the embedded runner.

https://hl7.org/fhir/R4/async.html -- long work runs outside the request and is polled. A job
resumes from its last checkpoint after a failed attempt or a dead worker, and is failed with
the reason after FHIR_JOB_MAX_ATTEMPTS; a worker that lost its job cannot write to it.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from fhir_api.bulk import export
from fhir_api.store import job_runner, jobs, repository
from fhir_api.store.models import Job
from tests.conftest import finish_job, new_patient, status_path
from tests.fhir_api.test_bulk_export import ASYNC, exported, obs

pytestmark = pytest.mark.django_db


@pytest.fixture
def observations(db) -> list[str]:
    patient = repository.create("Patient", new_patient()).stored.logical_id
    return [repository.create("Observation", obs(patient, f"code-{i}")).stored.logical_id for i in range(5)]


def _age_heartbeat(seconds: float = 3600) -> None:
    Job.objects.update(heartbeat_at=jobs.now() - timedelta(seconds=seconds))


def test_an_export_that_failed_mid_way_resumes_from_its_checkpoint_without_duplicates(
        fhir, observations, settings, monkeypatch):
    settings.BULK_EXPORT_FILE_RESOURCES = 2
    real_save = export._Part.save
    calls = {"n": 0}

    def flaky_save(self, job_id):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk went away")
        return real_save(self, job_id)

    monkeypatch.setattr(export._Part, "save", flaky_save)
    kicked = fhir.get("/$export", headers=ASYNC, _type="Observation")
    response = finish_job(fhir, kicked)  # attempt 1 fails on the second file, attempt 2 resumes
    assert response.status_code == 200, response.content
    job = Job.objects.get()
    assert job.attempts == 2 and "disk went away" in job.error
    manifest = response.json()
    assert [i["count"] for i in manifest["output"]] == [2, 2, 1]
    assert sorted(r["id"] for r in exported(fhir, manifest)["Observation"]) == sorted(observations)
    assert calls["n"] == 4  # file 1 once, file 2 twice, file 3 once: file 1 was not written again


def test_a_job_that_always_fails_is_failed_after_the_bounded_attempts(fhir, observations, settings, monkeypatch):
    settings.FHIR_JOB_MAX_ATTEMPTS = 3

    def broken(*args, **kwargs):
        raise RuntimeError("the index is broken")

    monkeypatch.setattr(export.bulk_selection, "condition", broken)
    kicked = fhir.get("/$export", headers=ASYNC, _type="Observation")
    response = finish_job(fhir, kicked)
    assert response.status_code == 500
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "failed after 3 attempts" in diagnostics and "the index is broken" in diagnostics
    assert Job.objects.get().attempts == 3


def test_a_job_whose_worker_stopped_beating_is_queued_again_and_resumes(fhir, observations, settings):
    kicked = fhir.get("/$export", headers=ASYNC, _type="Observation")
    job_id = Job.objects.get().id
    claimed = jobs.claim(job_id)  # a worker took it ... and died (no heartbeat, no end)
    assert claimed is not None
    assert jobs.recover_stale() == []  # still beating recently: left alone
    _age_heartbeat()
    polled = fhir.get(status_path(kicked))  # any status poll takes the job back
    assert polled.status_code == 202 and "stopped answering" in polled["X-Progress"]
    assert Job.objects.get().status == Job.QUEUED
    response = finish_job(fhir, kicked)
    assert response.status_code == 200
    assert Job.objects.get().attempts == 2


def test_a_job_abandoned_on_its_last_attempt_is_failed_with_the_reason(fhir, observations, settings):
    settings.FHIR_JOB_MAX_ATTEMPTS = 1
    kicked = fhir.get("/$export", headers=ASYNC)
    jobs.claim(Job.objects.get().id)
    _age_heartbeat()
    jobs.housekeeping()
    response = fhir.get(status_path(kicked))
    assert response.status_code == 500
    assert "stopped answering" in response.json()["issue"][0]["diagnostics"]


def test_a_job_left_queued_past_the_stale_time_is_sent_to_the_queue_again(settings, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    settings.FHIR_JOB_STALE_SECONDS = 60
    waiting = jobs.submit("reindex", {"types": ["Observation"]}, queue=False)  # its message was lost
    fresh = jobs.submit("reindex", {"types": ["Patient"]}, queue=False)
    Job.objects.filter(id=waiting.id).update(created_at=jobs.now() - timedelta(seconds=120))
    sent: list[str] = []
    monkeypatch.setattr(jobs, "dispatch", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.redispatch_waiting() == [waiting.id]
    assert sent == [waiting.id] and fresh.id not in sent
    assert jobs.redispatch_waiting() == []  # sent again only after another FHIR_JOB_STALE_SECONDS
    Job.objects.filter(id=waiting.id).update(heartbeat_at=jobs.now() - timedelta(seconds=120))
    assert jobs.redispatch_waiting() == [waiting.id]


def test_a_worker_that_lost_its_job_cannot_write_to_it(observations):
    job = jobs.submit("reindex", {"types": ["Observation"]})
    first = jobs.Context(*jobs.claim(job.id))
    _age_heartbeat()
    jobs.recover_stale()
    second = jobs.Context(*jobs.claim(job.id))
    with pytest.raises(jobs.JobLost):
        first.save({"from_id": 99})
    second.save({"from_id": 1})
    assert Job.objects.get().checkpoint == {"from_id": 1}


def test_a_job_is_claimed_once(observations):
    job = jobs.submit("reindex", {"types": []})
    assert jobs.claim(job.id) is not None
    assert jobs.claim(job.id) is None
    assert job_runner.run_pending() == 0


def test_reindex_answers_202_and_its_status_url_reports_the_result(fhir, observations):
    kicked = fhir.post("/$reindex", {"resourceType": "Parameters", "parameter": [
        {"name": "type", "valueString": "Observation"}, {"name": "batchSize", "valueInteger": 2}]})
    assert kicked.status_code == 202
    waiting = fhir.get(status_path(kicked))
    assert waiting.status_code == 202 and waiting["X-Progress"] == "queued"
    result = finish_job(fhir, kicked).json()
    values = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in result["parameter"]}
    assert values["resources"] == 5 and values["complete"] is True
    assert Job.objects.get().checkpoint["from_id"] > 0  # a checkpoint per batch


def test_the_reindex_command_runs_as_a_job(observations):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("reindex", "Observation", "--no-progress", stdout=out)
    job = Job.objects.get()
    assert job.kind == "reindex" and job.status == Job.COMPLETED and job.result["resources"] == 5
    assert "reindexed 5 resources" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_embedded_runner_thread_runs_a_job_without_any_worker(fhir, settings):
    from django.db import connection

    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # The test database's shared cache locks a table between threads outright (no busy
        # wait), and each status poll writes its AuditEvent while the runner writes the job.
        pytest.skip("needs a database file or PostgreSQL: in-memory SQLite locks tables between threads")
    settings.FHIR_JOBS = "embedded"
    repository.create("Patient", new_patient())
    try:
        kicked = fhir.post("/$reindex", {"resourceType": "Parameters"})
        assert kicked.status_code == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = fhir.get(status_path(kicked))
            if response.status_code != 202:
                break
            time.sleep(0.1)
        assert response.status_code == 200, response.content
    finally:
        job_runner.stop_embedded()
