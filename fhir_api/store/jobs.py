"""Background jobs: the job table's life cycle, shared by every way of running them.

https://hl7.org/fhir/R4/async.html and https://hl7.org/fhir/uv/bulkdata/export.html -- long
work ($export, $reindex) answers 202 with a status URL and runs elsewhere. A job is a row
(fhir_api.store.models.Job); this module creates it, hands it to the queue, lets exactly one
worker claim it, records its checkpoints and its end, and takes it back from a worker that
died. Three queues run the same code (FHIR_JOBS):

- `celery`: a message per job on the broker (Redis); `make worker` runs Celery workers, on
  any number of machines sharing the database (fhirproject.celery).
- `database`: workers poll the table (`manage.py run_jobs`); no broker.
- `embedded`: each server process polls the table in a background thread (the default,
  so `make run` needs nothing else).

Kinds of work register themselves from above (`register`), so the store knows no export or
search code. A worker killed in the middle (SIGKILL) stops its heartbeat: after
FHIR_JOB_STALE_SECONDS any worker (or a status poll) queues the job again, and it resumes
from its last checkpoint; after FHIR_JOB_MAX_ATTEMPTS it is failed with the reason. A queued
job's `heartbeat_at` is when it was last handed to the queue (a lost Celery message is sent
again: `redispatch_waiting`).
Every step after the claim is a conditional UPDATE on (id, lease), so a worker that lost its
lease (cancelled, or presumed dead and replaced) can never overwrite the new holder's state.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from fhir_api.store import routing
from fhir_api.store.models import Job

logger = logging.getLogger(__name__)

ACTIVE = (Job.QUEUED, Job.RUNNING)


class JobLost(Exception):
    """This worker no longer holds the job: it was cancelled or given to another worker."""


@dataclass(frozen=True)
class Kind:
    name: str
    run: Callable[[Context], Any]  # returns the job's result (JSON), stored when it completes
    cleanup: Callable[[Job], None] | None = None  # removes what it made (cancel, expiry)
    # How long a completed job's result stays available (None: until deleted).
    ttl: Callable[[], timedelta | None] = lambda: None
    # Reads the FHIR data only (a bulk export): it may read a replica that has caught up with
    # the primary as it was when the job started (fhir_api.store.routing); its job row and
    # everything it writes stay on the primary.
    reads_replica: bool = False


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    _KINDS[kind.name] = kind


def kind_of(job: Job) -> Kind:
    return _KINDS[job.kind]


def now() -> datetime:
    return timezone.now()


# -- submitting ------------------------------------------------------------------------------


def submit(kind: str, params: dict[str, Any], *, owner_client: str = "", owner_user: int | None = None,
           queue: bool = True) -> Job:
    """A new queued job, handed to the queue once the surrounding transaction commits (unless
    `queue` is false: the caller runs it itself with `execute`)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job.objects.create(id=secrets.token_urlsafe(24), kind=kind, params=params, owner_client=owner_client,
                             owner_user=owner_user, created_at=now())
    if queue:
        transaction.on_commit(lambda: dispatch(job.id))
    return job


def dispatch(job_id: str) -> None:
    """Tell the queue a job is waiting (the row is already committed)."""
    mode = settings.FHIR_JOBS
    if mode == "celery":
        from celery import current_app  # the app fhirproject.celery configured

        current_app.send_task(TASK_NAME, args=[job_id])
    elif mode == "embedded":
        for wake in _embedded_wakers:
            wake()
    # "database": the workers find it in the table


# The embedded runner (fhir_api.store.job_runner) registers how to wake it, so this module
# does not import the runner that imports it.
_embedded_wakers: list[Callable[[], None]] = []


def on_embedded_dispatch(wake: Callable[[], None]) -> None:
    if wake not in _embedded_wakers:
        _embedded_wakers.append(wake)


TASK_NAME = "fhir.run_job"


# -- running ---------------------------------------------------------------------------------


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim(job_id: str) -> tuple[Job, str] | None:
    """Take a queued job for this worker (None when another took it or it is not queued)."""
    lease = secrets.token_hex(16)
    at = now()
    taken = Job.objects.filter(id=job_id, status=Job.QUEUED).update(
        status=Job.RUNNING, lease=lease, worker=worker_name()[:255], attempts=F("attempts") + 1,
        heartbeat_at=at, started_at=at,
    )
    if not taken:
        return None
    return Job.objects.get(id=job_id), lease


def next_queued() -> str | None:
    return Job.objects.filter(status=Job.QUEUED).order_by("created_at").values_list("id", flat=True).first()


class Context:
    """What a running job sees: its parameters, its checkpoint, and how to record progress."""

    def __init__(self, job: Job, lease: str, observer: Callable[[Context], None] | None = None) -> None:
        self.job = job
        self.observer = observer  # told of each recorded step (a command's progress line)
        self.progress = job.progress
        self.note = job.progress_note
        self.lease = lease
        self.params: dict[str, Any] = job.params
        self.checkpoint: dict[str, Any] = dict(job.checkpoint or {})
        self._lost = threading.Event()

    def _mine(self):
        return Job.objects.filter(id=self.job.id, lease=self.lease, status=Job.RUNNING)

    def save(self, checkpoint: dict[str, Any] | None = None, *, progress: float | None = None,
             note: str | None = None) -> None:
        """Record a checkpoint (work up to here is durable) and progress; JobLost if the job
        was cancelled or taken over meanwhile."""
        fields: dict[str, Any] = {"heartbeat_at": now()}
        if checkpoint is not None:
            self.checkpoint = checkpoint
            fields["checkpoint"] = checkpoint
        if progress is not None:
            self.progress = fields["progress"] = max(0.0, min(1.0, progress))
        if note is not None:
            self.note = fields["progress_note"] = note[:255]
        if self._lost.is_set() or not self._mine().update(**fields):
            self._lost.set()
            raise JobLost(self.job.id)
        if self.observer is not None:
            self.observer(self)

    def still_mine(self) -> None:
        """Raise JobLost when the job was cancelled or taken over (cheap: one indexed read)."""
        if self._lost.is_set() or not self._mine().exists():
            self._lost.set()
            raise JobLost(self.job.id)

    def heartbeat(self) -> bool:
        ok = bool(self._mine().update(heartbeat_at=now()))
        if not ok:
            self._lost.set()
        return ok


def _heartbeat_loop(context: Context, stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.FHIR_JOB_HEARTBEAT_SECONDS):
            if not context.heartbeat():
                return
    except Exception:  # a database hiccup: the next beat (or the stale check) decides
        logger.warning("job %s: heartbeat failed", context.job.id, exc_info=True)
    finally:
        close_old_connections()


def execute(job_id: str, observer: Callable[[Context], None] | None = None) -> str | None:
    """Claim and run one job to its end (or until this worker loses it); its final status."""
    claimed = claim(job_id)
    if claimed is None:
        return None
    job, lease = claimed
    context = Context(job, lease, observer)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat_loop, args=(context, stop), daemon=True, name=f"job-{job_id[:8]}")
    beat.start()
    try:
        if kind_of(job).reads_replica and routing.replica_aliases():
            with routing.caught_up_replica():
                result = kind_of(job).run(context)
        else:
            result = kind_of(job).run(context)
    except JobLost:
        _cleanup_if_cancelled(job_id)
        return Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    except Exception as exc:  # the job's own failure: retry within the bound, then fail
        logger.exception("job %s (%s) failed on attempt %s", job_id, job.kind, job.attempts)
        return _failed_attempt(job, lease, f"{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        beat.join(timeout=5)
    ttl, finished = kind_of(job).ttl(), now()
    done = Job.objects.filter(id=job_id, lease=lease, status=Job.RUNNING).update(
        status=Job.COMPLETED, result=result, progress=1.0, finished_at=finished, lease="",
        expires_at=finished + ttl if ttl is not None else None,
    )
    if not done:
        _cleanup_if_cancelled(job_id)
        return Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    return Job.COMPLETED


def _failed_attempt(job: Job, lease: str, reason: str) -> str:
    mine = Job.objects.filter(id=job.id, lease=lease, status=Job.RUNNING)
    if job.attempts >= settings.FHIR_JOB_MAX_ATTEMPTS:
        mine.update(status=Job.FAILED, error=f"failed after {job.attempts} attempts; last: {reason}"[:10000],
                    finished_at=now(), lease="")
        return Job.FAILED
    if mine.update(status=Job.QUEUED, error=reason[:10000], lease="", heartbeat_at=now()):
        transaction.on_commit(lambda: dispatch(job.id))
    return Job.QUEUED


def _cleanup_if_cancelled(job_id: str) -> None:
    job = Job.objects.filter(id=job_id).first()
    if job is not None and job.status in (Job.CANCELLED, Job.EXPIRED) and job.kind in _KINDS:
        cleanup = kind_of(job).cleanup
        if cleanup is not None:
            cleanup(job)


# -- what any worker (or a status poll) does for jobs whose worker died ----------------------


def recover_stale(job_id: str | None = None) -> list[str]:
    """Queue again (or fail, after the last attempt) running jobs whose worker stopped beating."""
    cutoff = now() - timedelta(seconds=settings.FHIR_JOB_STALE_SECONDS)
    stale = Job.objects.filter(status=Job.RUNNING).filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None))
    if job_id is not None:
        stale = stale.filter(id=job_id)
    requeued = []
    for job in stale.only("id", "lease", "attempts", "worker"):
        mine = Job.objects.filter(id=job.id, lease=job.lease, status=Job.RUNNING)
        reason = f"the worker {job.worker} stopped answering (attempt {job.attempts})"
        if job.attempts >= settings.FHIR_JOB_MAX_ATTEMPTS:
            mine.update(status=Job.FAILED, lease="", finished_at=now(),
                        error=f"failed after {job.attempts} attempts; last: {reason}")
        elif mine.update(status=Job.QUEUED, lease="", error=reason, heartbeat_at=now()):
            logger.warning("job %s: %s; queued again", job.id, reason)
            requeued.append(job.id)
            transaction.on_commit(lambda job_id=job.id: dispatch(job_id))
    return requeued


def redispatch_waiting() -> list[str]:
    """Send again the message of jobs queued for longer than FHIR_JOB_STALE_SECONDS.

    A queued job's message can be lost before any worker starts it: prefetched by a Celery
    worker that was then killed (Redis would hand it back only after its visibility timeout,
    an hour by default), or dropped with a broker restart. A queued job's `heartbeat_at` is
    when it was last handed to the queue; a second message for a job still waiting costs one
    failed claim, so sending again is safe."""
    at = now()
    cutoff = at - timedelta(seconds=settings.FHIR_JOB_STALE_SECONDS)
    waiting = Job.objects.filter(status=Job.QUEUED).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None, created_at__lt=cutoff))
    sent = []
    for job_id in waiting.values_list("id", flat=True):
        if Job.objects.filter(id=job_id, status=Job.QUEUED).update(heartbeat_at=at):
            sent.append(job_id)
            transaction.on_commit(lambda job_id=job_id: dispatch(job_id))
    return sent


def cancel(job: Job) -> bool:
    """Cancel a job (queued, running or completed) and remove what it made."""
    if not Job.objects.filter(id=job.id, status__in=(*ACTIVE, Job.COMPLETED)).update(
            status=Job.CANCELLED, lease="", finished_at=now()):
        return False
    job.status = Job.CANCELLED
    cleanup = kind_of(job).cleanup
    if cleanup is not None:
        cleanup(job)
    return True


def expire(job: Job) -> None:
    """A completed job past its expiry: remove what it made."""
    if Job.objects.filter(id=job.id, status=Job.COMPLETED).update(status=Job.EXPIRED, lease=""):
        cleanup = kind_of(job).cleanup
        if cleanup is not None:
            cleanup(job)


def sweep_expired() -> int:
    expired = list(Job.objects.filter(status=Job.COMPLETED, expires_at__lt=now()))
    for job in expired:
        expire(job)
    return len(expired)


def housekeeping() -> None:
    """What every worker does now and then: take back abandoned jobs, send again the messages
    of jobs nobody started, remove expired files."""
    recover_stale()
    if settings.FHIR_JOBS == "celery":  # the polling runners find queued jobs in the table
        redispatch_waiting()
    sweep_expired()


def housekeeping_seconds() -> float:
    """How often a worker does its housekeeping: often enough that a job is taken back soon
    after it goes stale (half FHIR_JOB_STALE_SECONDS), and at least every 10 s."""
    return min(10.0, settings.FHIR_JOB_STALE_SECONDS / 2)
