"""The one signal the store sends: a resource version was written (inside the transaction).

Receivers run inside the writer's database transaction, so whatever they write (the
search index) commits or rolls back with the resource itself.
"""
from django.dispatch import Signal

# kwargs: resource (fhir_api.store.models.Resource, already saved),
#         content (the resource as a dict, or None when the version is a deletion)
resource_written = Signal()

# The same for a bulk write (bulk_create sends no model signals): kwargs items, a list of
# (Resource, content) pairs. Receivers handle the whole list at once (one INSERT per table).
resources_written = Signal()
