"""`manage.py reindex [TYPE ...]`: rebuild the search index from the stored resources.

Walks fhir_api_resource in batches by row id (so it can resume with --from-id after an
interruption), parses each current version and replaces its index rows, one transaction
per batch (fhir_search.reindexing, shared with the `$reindex` operation). Progress goes
to stderr.
"""
from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fhir_api.store.structure import resource_types
from fhir_search.reindexing import Progress, reindex


class Command(BaseCommand):
    help = "Rebuild the search index of all resources, or of the given resource types."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("types", nargs="*", metavar="TYPE", help="resource types (default: all)")
        parser.add_argument("--from-id", type=int, default=0, help="resume at this fhir_api_resource row id")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args: Any, types: list[str], from_id: int, batch_size: int, no_progress: bool,
               **options: Any) -> None:
        unknown = sorted(set(types) - resource_types())
        if unknown:
            raise CommandError(f"unknown resource types: {', '.join(unknown)}")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        started = time.monotonic()
        progress = reindex(
            types, from_id=from_id, batch_size=batch_size,
            on_batch=None if no_progress else lambda p: self._progress(p, started),
        )
        if not no_progress:
            self.stderr.write("")
        self.stdout.write(
            f"reindexed {progress.done} resources ({progress.rows} index rows); last id {progress.last_id}"
        )

    def _progress(self, progress: Progress, started: float) -> None:
        width = 30
        done, total, last_id = progress.done, progress.total, progress.last_id
        filled = min(width, int(width * done / total)) if total else width
        rate = done / max(time.monotonic() - started, 1e-6)
        self.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"({rate:.0f}/s, last id {last_id}; resume with --from-id {last_id + 1})",
            ending="",
        )
        self.stderr.flush()
