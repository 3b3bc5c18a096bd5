"""`manage.py reindex [TYPE ...]`: rebuild the search index from the stored resources, as a job.

The same `reindex` job as the `$reindex` operation (fhir_api.bulk.reindex): it walks
fhir_api_resource in batches by row id, one transaction per batch, each batch a checkpoint.
By default this process runs the job itself and shows its progress on stderr; with
`--queue` it only queues it for the workers and prints the job id. --from-id resumes at a
row id after an interruption.
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fhir_api.store import jobs
from fhir_api.store.models import Job
from fhir_api.store.structure import resource_types


class Command(BaseCommand):
    help = "Rebuild the search index of all resources, or of the given resource types (as a job)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("types", nargs="*", metavar="TYPE", help="resource types (default: all)")
        parser.add_argument("--from-id", type=int, default=0, help="resume at this fhir_api_resource row id")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
        parser.add_argument("--queue", action="store_true", help="queue the job for the workers and return")

    def handle(self, *args: Any, types: list[str], from_id: int, batch_size: int, no_progress: bool, queue: bool,
               **options: Any) -> None:
        unknown = sorted(set(types) - resource_types())
        if unknown:
            raise CommandError(f"unknown resource types: {', '.join(unknown)}")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        plan = {"types": types, "from_id": from_id, "batch_size": batch_size, "limit": None}
        job = jobs.submit("reindex", plan, queue=queue)
        if queue:
            self.stdout.write(f"queued reindex job {job.id}")
            return
        status = jobs.execute(job.id, observer=None if no_progress else self._progress)
        if not no_progress:
            self.stderr.write("")
        job.refresh_from_db()
        if status != Job.COMPLETED:
            raise CommandError(f"reindex job {job.id} {job.status}: {job.error}")
        result = job.result
        last = (result.get("resumeFromId") or 1) - 1 if not result["complete"] else job.checkpoint.get("from_id", 1) - 1
        self.stdout.write(f"reindexed {result['resources']} resources ({result['indexRows']} index rows); "
                          f"last id {last}")

    def _progress(self, context: jobs.Context) -> None:
        width = 30
        filled = int(width * context.progress)
        resume = context.checkpoint.get("from_id")
        self.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {context.note}"
                          + (f"; resume with --from-id {resume}" if resume else ""), ending="")
        self.stderr.flush()
