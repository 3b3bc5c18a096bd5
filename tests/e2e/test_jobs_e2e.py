"""Jobs end to end: real worker processes against the test database.

https://hl7.org/fhir/uv/bulkdata/export.html -- the whole `$export` flow through gunicorn
(as `make serve` runs it) and a Celery worker process on Redis (as `make worker` runs it);
and workers killed with SIGKILL in the middle of a job -- a `run_jobs` worker and a Celery
worker -- whose job the next worker resumes from its checkpoint, or fails with the reason
once its workers died FHIR_JOB_MAX_ATTEMPTS times. All need PostgreSQL (the processes share
the test database; the SQLite test database lives in this process's memory); the Celery tests
also need Redis (TEST_REDIS_URL, default redis://127.0.0.1:6379/5), and are skipped, saying
so, without it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from fhir_api.store import jobs, repository
from fhir_api.store.models import Job, Resource
from fhir_search.models import StringIndex
from tests.conftest import new_patient
from tests.live import ROOT, database_url, request, serve, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


@pytest.fixture
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("worker processes share the test database: run with DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc}); .ci/run starts it "
                    "(redis-server --daemonize yes --port 6379)")
    return REDIS_URL


def _environment(database: str, **env: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "DJANGO_", "CELERY_", "BULK_"))}
    out.update({"DATABASE_URL": database, "DJANGO_SETTINGS_MODULE": "fhirproject.settings",
                "FHIR_AUTH_REQUIRED": "false", "FHIR_WARM_UP": "false", **env})
    return out


@contextmanager
def worker(command: list[str], env: dict[str, str], ready: str) -> Iterator[subprocess.Popen]:
    """A worker process in its own process group, up once its log says `ready`."""
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until(process, log, lambda: ready in log.read_text(errors="replace"), "the worker", every=0.2)
        process.log = log  # type: ignore[attr-defined]
        yield process
    finally:
        stop(process)
        log.unlink(missing_ok=True)


def _wait(predicate, timeout: float = 60, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_export_end_to_end_through_gunicorn_and_a_celery_worker_on_redis(postgres_only, redis_url, tmp_path):
    patients = [repository.create("Patient", new_patient()).stored.logical_id for _ in range(3)]
    for p in patients:
        repository.create("Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                          "subject": {"reference": f"Patient/{p}"}})
    database = database_url(connection.settings_dict)
    queue = f"fhir-e2e-{uuid.uuid4().hex[:8]}"  # this test's own queue on a shared Redis
    shared = {"CELERY_BROKER_URL": redis_url, "CELERY_QUEUE": queue, "BULK_EXPORT_DIR": str(tmp_path),
              "BULK_EXPORT_POLL_SECONDS": "0"}
    celery = [sys.executable, "-m", "celery", "-A", "fhirproject", "worker", "--pool=solo", "--loglevel=INFO",
              "-n", f"{queue}@%h"]
    with worker(celery, _environment(database, **shared), ready="ready."), serve(database, **shared) as server:
        headers = {"Prefer": "respond-async"}
        status, head, body = request(server.port, "GET", "/fhir/$export?_type=Patient,Observation", headers=headers)
        assert status == 202, body
        location = head["content-location"]
        path = location.split(f":{server.port}", 1)[1]

        def finished():
            answer = request(server.port, "GET", path)
            assert answer[0] in (200, 202), answer[2]
            if answer[0] == 202:
                assert answer[1]["retry-after"] and answer[1]["x-progress"]
            return answer if answer[0] == 200 else None

        status, head, body = _wait(finished, every=0.3)
        manifest = json.loads(body)
        counts = {item["type"]: item["count"] for item in manifest["output"]}
        assert counts == {"Patient": 3, "Observation": 3}
        assert Job.objects.get().worker.split(":")[1] != str(server.process.pid)  # run by the worker
        for item in manifest["output"]:
            status, head, body = request(server.port, "GET", item["url"].split(f":{server.port}", 1)[1])
            assert status == 200 and head["content-type"] == "application/fhir+ndjson"
            lines = [json.loads(line) for line in body.decode().splitlines()]
            assert len(lines) == item["count"] and {r["resourceType"] for r in lines} == {item["type"]}
        assert request(server.port, "DELETE", path)[0] == 202
        assert request(server.port, "GET", path)[0] == 404
        assert not any(tmp_path.rglob("*.ndjson"))


def test_a_killed_worker_s_job_is_resumed_from_its_checkpoint_by_another(postgres_only):
    total = 1500
    for start in range(0, total, 500):
        repository.create_many([("Patient", str(uuid.uuid4()), new_patient(name=[{"family": f"Kill{i}"}]))
                                for i in range(start, start + 500)])
    job = jobs.submit("reindex", {"types": ["Patient"], "from_id": 0, "batch_size": 10, "limit": None})
    env = _environment(database_url(connection.settings_dict), FHIR_JOBS="database",
                       FHIR_JOB_HEARTBEAT_SECONDS="0.2", FHIR_JOB_STALE_SECONDS="1", FHIR_JOB_POLL_SECONDS="0.1")
    command = [sys.executable, "manage.py", "run_jobs"]
    with worker(command, env, ready="waiting for jobs") as first:
        def under_way():
            row = Job.objects.filter(id=job.id).values("progress", "checkpoint").first()
            return row if 0.2 <= row["progress"] < 0.8 else None

        _wait(under_way, every=0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed = Job.objects.get(id=job.id)
    assert killed.status == Job.RUNNING and killed.attempts == 1  # nobody told the table
    resume_from = killed.checkpoint["from_id"]
    assert resume_from > 0
    last_row_before = StringIndex.objects.order_by("-id").values_list("id", flat=True).first()

    with worker(command, env, ready="waiting for jobs"):
        done = _wait(lambda: Job.objects.filter(id=job.id, status__in=(Job.COMPLETED, Job.FAILED)).first())
    assert done.status == Job.COMPLETED, done.error
    assert done.attempts == 2 and "stopped answering" in done.error
    assert done.result["resources"] == total and done.result["complete"] is True
    # Resumed, not restarted: rows indexed before the checkpoint kept their index rows; the
    # rest were indexed again by the second worker.
    before = Resource.objects.filter(resource_type="Patient", id__lt=resume_from).values("id")
    after = Resource.objects.filter(resource_type="Patient", id__gte=resume_from).values("id")
    assert not StringIndex.objects.filter(resource_id__in=before, id__gt=last_row_before).exists()
    assert not StringIndex.objects.filter(resource_id__in=after, id__lte=last_row_before).exists()


# -- a Celery worker killed with SIGKILL ---------------------------------------------------------


def _celery_env(redis_url: str, queue: str, export_dir: Path, **extra: str) -> dict[str, str]:
    """A Celery worker's environment: this test's own queue, a fast heartbeat (a job is stale
    after 1 s), export files of a few resources each (many checkpoints)."""
    return _environment(database_url(connection.settings_dict), CELERY_BROKER_URL=redis_url, CELERY_QUEUE=queue,
                        FHIR_JOBS="celery", BULK_EXPORT_DIR=str(export_dir), FHIR_JOB_HEARTBEAT_SECONDS="0.2",
                        FHIR_JOB_STALE_SECONDS="1", **extra)


def _celery_worker(queue: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "fhirproject", "worker", "--pool=solo", "--loglevel=INFO",
            "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h"]


def _send(redis_url: str, queue: str, job_id: str) -> None:
    """What the kick-off does with FHIR_JOBS=celery: one message naming the job."""
    from celery import Celery

    sender = Celery("e2e-sender", broker=redis_url)
    try:
        sender.send_task(jobs.TASK_NAME, args=[job_id], queue=queue)
    finally:
        sender.close()


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_celery_worker_killed_mid_export_leaves_a_job_a_new_worker_resumes_from_its_checkpoint(
        postgres_only, redis_url, tmp_path, fhir):
    total = 1200
    for start in range(0, total, 400):
        repository.create_many([("Patient", str(uuid.uuid4()), new_patient(name=[{"family": f"Celery{i}"}]))
                                for i in range(start, start + 400)])
    kicked = fhir.get("/$export", headers={"Prefer": "respond-async"}, _type="Patient")
    assert kicked.status_code == 202, kicked.content
    job_id = kicked["Content-Location"].rsplit("/", 1)[1]
    queue = f"fhir-e2e-{uuid.uuid4().hex[:8]}"
    env = _celery_env(redis_url, queue, tmp_path, BULK_EXPORT_FILE_RESOURCES="4")
    _send(redis_url, queue, job_id)
    folder = tmp_path / job_id

    with worker(_celery_worker(queue), env, ready="ready.") as first:
        def under_way():
            row = Job.objects.filter(id=job_id).values("status", "checkpoint").first()
            written = (row["checkpoint"] or {}).get("written", 0)
            return row if row["status"] == Job.RUNNING and 0.2 * total <= written < 0.8 * total else None

        _wait(under_way, every=0.02)
        _kill(first)
    killed = Job.objects.get(id=job_id)
    assert killed.status == Job.RUNNING and killed.attempts == 1  # nobody told the table
    first_worker = killed.worker
    # The files the first worker saved before it died, as they are on disk now.
    saved_before = {item["name"]: (folder / item["name"]).stat() for item in killed.checkpoint["outputs"]}
    assert len(saved_before) == killed.checkpoint["written"] // 4

    # The new worker's housekeeping finds the stale job, queues it again and sends a message.
    with worker(_celery_worker(queue), env, ready="ready."):
        done = _wait(lambda: Job.objects.filter(id=job_id, status__in=(Job.COMPLETED, Job.FAILED)).first())
    assert done.status == Job.COMPLETED, done.error
    assert done.attempts == 2 and "stopped answering" in done.error and done.worker != first_worker
    outputs = done.result["output"]
    assert sum(item["count"] for item in outputs) == total
    exported = [json.loads(line)["id"] for item in outputs for line in (folder / item["name"]).read_text().splitlines()]
    assert len(exported) == len(set(exported)) == total
    # Resumed, not restarted: the files saved before the kill were not written again.
    for name, before in saved_before.items():
        after = (folder / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), name


def test_a_job_whose_celery_workers_keep_dying_is_failed_after_the_bounded_attempts(
        postgres_only, redis_url, tmp_path, fhir):
    total = 1500
    for start in range(0, total, 500):
        repository.create_many([("Patient", str(uuid.uuid4()), new_patient(name=[{"family": f"Doomed{i}"}]))
                                for i in range(start, start + 500)])
    # No message is sent: a queued job nobody started (its message lost) is sent again by the
    # workers' housekeeping once it has waited FHIR_JOB_STALE_SECONDS.
    job = jobs.submit("reindex", {"types": ["Patient"], "from_id": 0, "batch_size": 3, "limit": None}, queue=False)
    Job.objects.filter(id=job.id).update(created_at=jobs.now() - timedelta(seconds=5))
    queue = f"fhir-e2e-{uuid.uuid4().hex[:8]}"
    env = _celery_env(redis_url, queue, tmp_path, FHIR_JOB_MAX_ATTEMPTS="2")

    def running(attempt: int, beyond: int):
        row = Job.objects.filter(id=job.id).values("status", "attempts", "checkpoint").first()
        from_id = (row["checkpoint"] or {}).get("from_id", 0)
        return row if row["status"] == Job.RUNNING and row["attempts"] == attempt and from_id > beyond else None

    with worker(_celery_worker(queue), env, ready="ready.") as first:
        reached = _wait(lambda: running(1, 0), every=0.02)["checkpoint"]["from_id"]
        _kill(first)
    with worker(_celery_worker(queue), env, ready="ready.") as second:
        _wait(lambda: running(2, reached), every=0.02)  # resumed past the first checkpoint
        _kill(second)
    assert Job.objects.get(id=job.id).status == Job.RUNNING
    with worker(_celery_worker(queue), env, ready="ready."):
        failed = _wait(lambda: Job.objects.filter(id=job.id).exclude(status=Job.RUNNING).first())
    assert failed.status == Job.FAILED and failed.attempts == 2
    assert failed.error.startswith("failed after 2 attempts; last: the worker ") and "stopped answering" in failed.error
    status = fhir.get(f"/_jobs/{job.id}")
    assert status.status_code == 500 and "failed after 2 attempts" in status.json()["issue"][0]["diagnostics"]
