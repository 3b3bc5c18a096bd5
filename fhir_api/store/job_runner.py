"""Workers that find jobs in the job table: `manage.py run_jobs`, and the embedded thread.

FHIR_JOBS=database runs `run_forever` in worker processes; FHIR_JOBS=embedded (no broker,
the `make run` default) runs it in a daemon thread of each server process, woken at once
when that process submits a job. Several of them may poll one table: a job goes to the one
whose conditional claim wins (fhir_api.store.jobs.claim).
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from fhir_api.store import jobs

logger = logging.getLogger(__name__)

def run_pending(limit: int | None = None) -> int:
    """Run queued jobs one after another until none is left (or `limit` ran); how many ran."""
    ran = 0
    while limit is None or ran < limit:
        job_id = jobs.next_queued()
        if job_id is None:
            break
        if jobs.execute(job_id) is not None:
            ran += 1
    return ran


def run_forever(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Poll for jobs until `stop` is set; housekeeping (stale and expired jobs) between them."""
    last_housekeeping = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() - last_housekeeping >= jobs.housekeeping_seconds():
                jobs.housekeeping()
                last_housekeeping = time.monotonic()
            ran = run_pending(limit=1)
        except Exception:  # the database is away, say: keep polling, never die
            logger.exception("job runner: polling failed")
            ran = 0
        finally:
            close_old_connections()
        if not ran:
            waiter = wake or stop
            waiter.wait(settings.FHIR_JOB_POLL_SECONDS)
            if wake is not None:
                wake.clear()


_embedded: threading.Thread | None = None
_wake = threading.Event()
_stop = threading.Event()
_lock = threading.Lock()


def wake_embedded() -> None:
    """Start this process's runner thread if needed, and wake it."""
    global _embedded
    with _lock:
        if _embedded is None or not _embedded.is_alive():
            _embedded = threading.Thread(target=run_forever, args=(_stop, _wake), daemon=True,
                                         name="fhir-embedded-jobs")
            _embedded.start()
    _wake.set()


def stop_embedded(timeout: float = 30) -> None:
    """Stop this process's runner thread (after its current job); the next wake starts a new one."""
    global _embedded
    with _lock:
        thread, _embedded = _embedded, None
    if thread is not None:
        _stop.set()
        _wake.set()
        thread.join(timeout)
        _stop.clear()


jobs.on_embedded_dispatch(wake_embedded)
