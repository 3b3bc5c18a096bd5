"""`manage.py reindex [TYPE ...]`: rebuild the search index from the stored resources.

Walks fhir_api_resource in batches by row id (so it can resume with --from-id after an
interruption), parses each current version and replaces its index rows with
`fhir_search.indexing.index_many`, one transaction per batch. Progress goes to stderr.
"""
from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from fhir_api import jsonio
from fhir_api.models import Resource
from fhir_api.structure import resource_types
from fhir_search.indexing import index_many


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
        rows = Resource.objects.filter(id__gte=from_id)
        if types:
            rows = rows.filter(resource_type__in=types)
        total = rows.count()
        done = written = 0
        last_id = from_id - 1
        started = time.monotonic()
        while True:
            batch = list(rows.filter(id__gt=last_id).order_by("id")[:batch_size])
            if not batch:
                break
            items = [(r, None if r.deleted or not r.data else jsonio.loads(r.data)) for r in batch]
            with transaction.atomic():
                written += index_many(items)
            last_id = batch[-1].id
            done += len(batch)
            if not no_progress:
                self._progress(done, total, last_id, started)
        if not no_progress:
            self.stderr.write("")
        self.stdout.write(f"reindexed {done} resources ({written} index rows); last id {last_id}")

    def _progress(self, done: int, total: int, last_id: int, started: float) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        rate = done / max(time.monotonic() - started, 1e-6)
        self.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"({rate:.0f}/s, last id {last_id}; resume with --from-id {last_id + 1})",
            ending="",
        )
        self.stderr.flush()
