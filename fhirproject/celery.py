"""The Celery app: job messages on the broker (Redis), run by `make worker` processes.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html -- the broker only
carries job ids; the job's state lives in the database (fhir_api.store.jobs), so any number
of workers on any number of machines share the work, and a message lost with a killed worker
costs nothing: the job's stale heartbeat brings it back (`housekeeping`, run by every worker
every few seconds, and on each status poll).
"""
from __future__ import annotations

import os
import threading

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirproject.settings")

app = Celery("fhirproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # One job at a time per worker process, acknowledged when it is taken: the job table,
    # not the broker, is what brings back the job of a worker that dies.
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
)

HOUSEKEEPING_SECONDS = 10.0


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
        if stop.wait(HOUSEKEEPING_SECONDS):
            return


_stop = threading.Event()


@signals.worker_ready.connect
def _start_housekeeping(**_: object) -> None:
    """The worker's main process takes back abandoned jobs and removes expired exports."""
    threading.Thread(target=_housekeeping_loop, args=(_stop,), daemon=True, name="fhir-job-housekeeping").start()


@signals.worker_shutdown.connect
def _stop_housekeeping(**_: object) -> None:
    _stop.set()
