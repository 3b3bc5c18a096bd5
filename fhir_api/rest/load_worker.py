"""The child process of `manage.py load --workers N` (spawned, not forked: a fork would share
the parent's pooled database connections and the pool's threads). Nothing Django is imported
before `start` has set Django up, since a spawned child imports this module first."""
from __future__ import annotations

from typing import Any


def start(databases: dict[str, str]) -> None:
    """Start Django in the child, on the same databases as the parent."""
    import django
    from django.conf import settings

    django.setup()
    for alias, name in databases.items():
        settings.DATABASES[alias]["NAME"] = name
    from fhir_api.rest.warmup import warm_up

    warm_up()  # the R4 definitions once per child, not inside its first file


def load(path: str, resume: bool) -> Any:
    from pathlib import Path

    from fhir_api.rest import loader

    return loader.load_file(Path(path), resume)
