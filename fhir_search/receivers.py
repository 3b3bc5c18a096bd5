"""Signal glue: keep the search index current with every write (see fhir_search.indexing).

The store sends `resource_written` inside its transaction, so the index rows commit or roll
back with the resource: the index is never stale, nor ahead of the data.
"""
from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from fhir_api.models import Resource
from fhir_api.signals import resource_written, resources_written
from fhir_search.indexing import index_many, index_resource


@receiver(resource_written, sender=Resource, dispatch_uid="fhir_search.index_written")
def index_written(
    sender: type[Resource], resource: Resource, content: dict[str, Any] | None, **kwargs: Any
) -> None:
    index_resource(resource, content)


@receiver(resources_written, sender=Resource, dispatch_uid="fhir_search.index_many_written")
def index_many_written(sender: type[Resource], items: list[tuple[Resource, dict[str, Any] | None]],
                       **kwargs: Any) -> None:
    index_many(items, just_written=True)
