"""`manage.py load PATH...`: load Bundles, ndjson files and single resources, in parallel.

Folders are searched for *.json and *.ndjson. Each file is one transaction (fhir_api.rest.loader):
a file that fails leaves nothing behind and is reported with its OperationOutcome; the
others go on. `--workers N` loads N files at a time in N processes; Synthea's hospital and
practitioner files are loaded before the patient files that refer to them. `--resume`
skips files already loaded (recorded by content hash in the database). Progress (files,
resources, resources/s) goes to stderr; the exit status is 1 when a file failed.
"""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from fhir_api.rest import load_worker, loader
from fhir_api.store import statistics
from fhir_api.store.models import Resource, ResourceVersion


def loaded_tables() -> list[str]:
    """The tables a load fills: current and version rows, and every search index table."""
    index_tables = [m._meta.db_table for m in apps.get_app_config("fhir_search").get_models()
                    if m.__name__.endswith("Index")]
    return [Resource._meta.db_table, ResourceVersion._meta.db_table, *index_tables]


class Command(BaseCommand):
    help = "Load FHIR Bundles (transaction/batch), ndjson files and single resources from files and folders."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
        parser.add_argument("--workers", type=int, default=1, help="files loaded at once, each in its own process")
        parser.add_argument("--resume", action="store_true", help="skip files already loaded")
        parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")

    def handle(self, *args: Any, paths: list[str], workers: int, resume: bool, no_progress: bool,
               **options: Any) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        try:
            files = loader.discover(paths)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        first, rest = loader.ordered(files)
        self.started, self.total, self.done, self.resources = time.monotonic(), len(files), 0, 0
        self.skipped, self.failed = 0, []
        self.show = not no_progress
        for group in (first, rest):  # the second group may refer to what the first holds
            for outcome in self._run(group, workers, resume):
                self._record(outcome)
        if self.show:
            self.stderr.write("")
        if self.resources >= settings.FHIR_ANALYZE_ROWS:
            # Fresh planner statistics for what the workers wrote (fhir_api.store.statistics).
            statistics.analyze_all(loaded_tables())
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.stdout.write(f"loaded {self.resources} resources from {self.done - self.skipped - len(self.failed)} "
                          f"files in {elapsed:.1f} s ({self.resources / elapsed:.0f} resources/s); "
                          f"{self.skipped} skipped as already loaded; {len(self.failed)} failed")
        for outcome in self.failed:
            self.stderr.write(f"FAILED {outcome.path}: {orjson.dumps(outcome.error).decode()}")
        if self.failed:
            raise CommandError(f"{len(self.failed)} of {self.total} files failed (nothing of them was loaded)")

    def _run(self, files: list[Path], workers: int, resume: bool) -> Iterator[loader.Outcome]:
        if workers == 1 or len(files) < 2:
            for path in files:
                yield loader.load_file(path, resume)
            return
        databases = {alias: connections[alias].settings_dict["NAME"] for alias in connections}
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=load_worker.start,
                                 initargs=(databases,)) as pool:
            yield from pool.map(load_worker.load, [str(p) for p in files], [resume] * len(files))

    def _record(self, outcome: loader.Outcome) -> None:
        self.done += 1
        self.resources += outcome.resources
        if outcome.skipped:
            self.skipped += 1
        if outcome.error is not None:
            self.failed.append(outcome)
        if self.show:
            rate = self.resources / max(time.monotonic() - self.started, 1e-6)
            self.stderr.write(f"\r{self.done}/{self.total} files, {self.resources} resources, {rate:.0f}/s, "
                              f"{len(self.failed)} failed", ending="")
            self.stderr.flush()
