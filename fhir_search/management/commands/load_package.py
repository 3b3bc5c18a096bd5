"""`manage.py load_package FILE.tgz`: load a FHIR NPM package's definitions (fhir_search.packages)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fhir_search.packages import PackageError, load


class Command(BaseCommand):
    help = "Load the StructureDefinitions, ValueSets, CodeSystems, SearchParameters... of a FHIR package (.tgz)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="the package tarball, e.g. hl7.fhir.us.core-6.1.0.tgz")
        parser.add_argument("--no-reindex", action="store_true",
                            help="do not reindex the types its SearchParameters apply to (run `reindex` later)")

    def handle(self, *args: Any, file: str, no_reindex: bool, **options: Any) -> None:
        try:
            with open(file, "rb") as archive:
                loaded = load(archive, reindex_after=not no_reindex)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except PackageError as exc:
            raise CommandError(f"{file}: {exc}") from None
        counts = ", ".join(f"{n} {t}" for t, n in sorted(loaded.written.items())) or "nothing"
        self.stdout.write(f"loaded {loaded.name} {loaded.version}: {counts}")
        if loaded.reindexed:
            self.stdout.write(f"reindexed {loaded.reindexed} resources for the new SearchParameters")
        for reason in loaded.refused:
            self.stderr.write(f"refused {reason}")
