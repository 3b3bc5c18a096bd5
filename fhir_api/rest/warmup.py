"""Load the R4 definitions before the first request, not during it.

The StructureDefinitions, the SearchParameter registry and the R4B validation models take
one to two seconds of CPU to load; a server process pays that once at start-up (wsgi.py)
instead of making its first clients wait.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

# Validating one small resource of these types loads their models and validators.
_SAMPLES = (
    {"resourceType": "Patient", "gender": "unknown"},
    {"resourceType": "Observation", "status": "final", "code": {"text": "warm-up"}},
    {"resourceType": "Bundle", "type": "transaction"},
)


def warm_up() -> None:
    from fhir_api.store import validation
    from fhir_api.rest.capability import capability_statement
    from fhir_api.store.structure import structures
    from fhir_search.registry import registry

    structures()
    registry()
    capability_statement("http://localhost/fhir")
    for sample in _SAMPLES:
        validation.check(sample)
    logger.info("R4 definitions loaded")
