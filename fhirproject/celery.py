"""The Celery app: job messages on the broker (Redis), run by `make worker` processes.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html -- the broker only
carries job ids; the job's state lives in the database (fhir_api.store.jobs), so any number
of workers on any number of machines share the work, and a message lost with a killed worker
costs nothing: the job's stale heartbeat brings it back (`housekeeping`, run by every worker's
main process every few seconds, and on each status poll).

Why not acks_late with reject_on_worker_lost (the broker redelivering the message of a worker
that died)? A job runs for minutes or hours, longer than Redis's visibility timeout, after
which Redis would hand a still-running job's message to a second worker; and a worker killed
with SIGKILL (the whole worker, not a pool child) never rejects anything. The job table knows
better: a job whose worker stopped beating for FHIR_JOB_STALE_SECONDS is queued again (and a
new message sent), resumed from its checkpoint, and failed with the reason after
FHIR_JOB_MAX_ATTEMPTS. So messages are acknowledged when a worker starts them, and a message
that got lost before that (prefetched by a worker that died, a broker restart) is sent again
for a job still queued after FHIR_JOB_STALE_SECONDS (jobs.redispatch_waiting); a duplicate
message costs one failed conditional claim.
"""
from __future__ import annotations

import os
import threading

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirproject.settings")

app = Celery("fhirproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # One job at a time per worker process, acknowledged when it starts: the job table, not
    # the broker, is what brings back the job of a worker that dies (see above).
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    task_reject_on_worker_lost=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
)


@app.task(name="fhir.run_job", ignore_result=True)
def run_job(job_id: str) -> str | None:
    from django.db import close_old_connections

    from fhir_api.store import jobs

    close_old_connections()
    try:
        return jobs.execute(job_id)
    finally:
        close_old_connections()


def _housekeeping_loop(stop: threading.Event) -> None:
    import logging

    from django.db import close_old_connections

    from fhir_api.store import jobs

    while True:
        try:
            jobs.housekeeping()
        except Exception:
            logging.getLogger(__name__).exception("job housekeeping failed")
        finally:
            close_old_connections()
        if stop.wait(jobs.housekeeping_seconds()):
            return


_stop = threading.Event()


@signals.worker_ready.connect
def _start_housekeeping(**_: object) -> None:
    """The worker's main process takes back abandoned jobs and removes expired exports."""
    threading.Thread(target=_housekeeping_loop, args=(_stop,), daemon=True, name="fhir-job-housekeeping").start()


@signals.worker_shutdown.connect
def _stop_housekeeping(**_: object) -> None:
    _stop.set()
