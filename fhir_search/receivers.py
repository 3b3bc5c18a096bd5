"""Signal glue: keep the search index current with every write (see fhir_search.indexing).

The store sends `resource_written` inside its transaction, so the index rows commit or roll
back with the resource: the index is never stale, nor ahead of the data. Writes of the
definitions search depends on also go to their owners first: a SearchParameter to
fhir_search.stored_params (which may refuse it: the write then fails), a ValueSet or
CodeSystem to fhir_search.terminology (cached expansions), a CodeSystem's concepts to
fhir_search.concepts (the concept tables).
"""
from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from fhir_api.store.models import Resource
from fhir_api.store.signals import resource_written, resources_written
from fhir_search import concepts, definitions_lookup, stored_params, terminology
from fhir_search.indexing import index_many, index_resource


def _definition_written(resource: Resource, content: dict[str, Any] | None) -> None:
    if resource.resource_type == stored_params.RESOURCE_TYPE:
        stored_params.written(resource, content)
    elif resource.resource_type in terminology.RESOURCE_TYPES:
        if resource.resource_type == "CodeSystem":
            concepts.written(resource, content)
        terminology.touch()
    if resource.resource_type in definitions_lookup.RESOURCE_TYPES:
        definitions_lookup.touch()


@receiver(resource_written, sender=Resource, dispatch_uid="fhir_search.index_written")
def index_written(
    sender: type[Resource], resource: Resource, content: dict[str, Any] | None, **kwargs: Any
) -> None:
    _definition_written(resource, content)
    stored_params.ensure_current()
    index_resource(resource, content)


@receiver(resources_written, sender=Resource, dispatch_uid="fhir_search.index_many_written")
def index_many_written(sender: type[Resource], items: list[tuple[Resource, dict[str, Any] | None]],
                       **kwargs: Any) -> None:
    for resource, content in items:
        _definition_written(resource, content)
    stored_params.ensure_current()
    index_many(items, just_written=True)
