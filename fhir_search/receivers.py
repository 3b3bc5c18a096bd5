"""Signal glue: keep the search index current with every write (see fhir_search.indexing)."""
