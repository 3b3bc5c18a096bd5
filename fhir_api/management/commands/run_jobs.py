"""`manage.py run_jobs`: a worker that takes jobs from the job table (no broker needed).

For FHIR_JOBS=database (or beside the embedded runners): run as many of these as you like, on
any machine that reaches the database; each claims one job at a time. SIGTERM or SIGINT
stops it after the job in hand (a SIGKILL loses nothing: the job goes back to the queue
when its heartbeat goes stale, and resumes from its checkpoint). `make worker` runs this
when no Celery broker is configured.
"""
from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from fhir_api.store import job_runner


class Command(BaseCommand):
    help = "Run queued jobs ($export, $reindex) from the job table until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="run the queued jobs, then exit")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        if once:
            ran = job_runner.run_pending()
            self.stdout.write(f"ran {ran} jobs")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write("job worker: waiting for jobs (SIGTERM to stop)")
        self.stdout.flush()
        job_runner.run_forever(stop)
