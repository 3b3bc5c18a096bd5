"""Rebuilding the search index from the stored resources, in resumable batches.

https://hl7.org/fhir/R4/searchparameter.html -- after a SearchParameter is added or
changed, resources stored before it have no (or old) index rows for it. `reindex` walks
fhir_api_resource by row id, one transaction per batch, and replaces each resource's
rows with fhir_search.indexing.index_many. Shared by `manage.py reindex` and the
`$reindex` operation; both can resume at the row id where they stopped.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction

from fhir_api.store import jsonio
from fhir_api.store.models import Resource
from fhir_search import stored_params
from fhir_search.indexing import index_many


@dataclass
class Progress:
    total: int  # resources to visit (at the start)
    done: int = 0  # resources visited
    rows: int = 0  # index rows written
    last_id: int = 0  # fhir_api_resource id of the last resource visited
    finished: bool = False  # False when `limit` stopped the walk early


def reindex(
    types: Iterable[str] = (),
    *,
    from_id: int = 0,
    batch_size: int = 500,
    limit: int | None = None,
    on_batch: Callable[[Progress], None] | None = None,
) -> Progress:
    """Re-index the resources of `types` (all when empty) with row id >= from_id.

    `limit` stops after about that many resources (whole batches), leaving `finished`
    False and `last_id` to resume from (`from_id=last_id + 1`).
    """
    stored_params.ensure_current(force=True)  # index with every stored SearchParameter
    rows = Resource.objects.filter(id__gte=from_id)
    types = list(types)
    if types:
        rows = rows.filter(resource_type__in=types)
    progress = Progress(total=rows.count(), last_id=from_id - 1)
    while limit is None or progress.done < limit:
        with transaction.atomic():
            # FOR UPDATE: a writer of one of these resources waits until the batch commits
            # (it takes the same row lock), so the rows written here can never replace the
            # rows of a newer version committed between this read and this write.
            batch = list(
                rows.filter(id__gt=progress.last_id).order_by("id").select_for_update()[:batch_size]
            )
            if not batch:
                progress.finished = True
                break
            items = [(r, None if r.deleted or not r.data else jsonio.loads(r.data)) for r in batch]
            progress.rows += index_many(items)
        progress.last_id = batch[-1].id
        progress.done += len(batch)
        if on_batch is not None:
            on_batch(progress)
    else:
        progress.finished = not rows.filter(id__gt=progress.last_id).exists()
    return progress
