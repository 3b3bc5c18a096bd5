"""Noticing, cheaply and across server processes, that stored definitions changed.

https://hl7.org/fhir/R4/searchparameter.html and valueset.html -- SearchParameter,
ValueSet and CodeSystem resources written to the server change how this process
searches and indexes, but the write may have happened in another process (app servers
scale out). Each process keeps what it built from them and a *stamp* of the stored rows:
their count and the sum of their version numbers. Every committed create, update or
delete raises the sum; with the latest lastUpdated and row id as well, a write that was
rolled back (after some process had read it) cannot leave a stamp equal to a later one.

The stamp is one small aggregate query over the (resource_type, last_updated) index.
It runs at most once per FHIR_DEFINITIONS_REFRESH seconds per process (so a search stays
one SQL statement almost always), and on the next use after this process wrote such a
resource itself (`touch`), so a change made here is seen here at once, and elsewhere
within the refresh interval.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Max, Sum

from fhir_api.store import routing
from fhir_api.store.models import Resource

logger = logging.getLogger(__name__)

Stamp = tuple[Any, ...]


def refresh_seconds() -> float:
    return float(settings.FHIR_DEFINITIONS_REFRESH)


class StoreWatch:
    def __init__(self, *resource_types: str) -> None:
        self.resource_types = resource_types
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._checked = float("-inf")
        self._dirty = True

    def touch(self) -> None:
        """Check the store on the next use (a resource of these types was written here)."""
        self._dirty = True

    def forget(self) -> None:
        """Forget the last stamp (what was built from it failed): the next use rebuilds."""
        self._stamp, self._dirty = None, True

    def changed(self, force: bool = False) -> bool:
        """True when the stored resources differ from the last time this returned True.

        The first call is always True (nothing was loaded yet).
        """
        now = time.monotonic()
        if not (force or self._dirty or now - self._checked >= refresh_seconds()):
            return False
        with self._lock:
            stamp = self._read()
            self._checked, self._dirty = now, False
            if stamp is None or stamp == self._stamp:  # unreadable: keep what is loaded
                return False
            self._stamp = stamp
            return True

    def _read(self) -> Stamp | None:
        try:
            # A savepoint when called inside a transaction: if the query fails (tables not
            # migrated yet) the caller's transaction must not be left aborted. Read where the
            # definitions will be loaded from (a replica, in a read-only request), so a change
            # is seen, and reloaded, only once that database has it.
            alias = routing.reading_alias()
            with transaction.atomic(using=alias):
                found = Resource.objects.using(alias).filter(resource_type__in=self.resource_types).aggregate(
                    n=Count("id"), versions=Sum("version_id"), latest=Max("last_updated"), top=Max("id")
                )
        except DatabaseError:
            logger.warning("cannot read stored %s; will retry", "/".join(self.resource_types), exc_info=True)
            return None
        return found["n"], found["versions"] or 0, found["latest"], found["top"]
