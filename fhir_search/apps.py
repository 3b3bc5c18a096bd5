from django.apps import AppConfig


class FhirSearchConfig(AppConfig):
    name = "fhir_search"
    verbose_name = "FHIR search index"

    def ready(self) -> None:
        # Glue only: the receiver calls fhir_search.indexing (see receivers.py).
        from fhir_search import audit_index, definitions_lookup, receivers  # noqa: F401

        # Validation (in the store) finds stored profiles and value sets through this.
        definitions_lookup.register()
