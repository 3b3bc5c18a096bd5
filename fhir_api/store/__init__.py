"""The store: the ground floor of fhir_api (models, the one writer, validation, R4 definitions, codecs, errors).

Nothing here imports fhir_api.rest or fhir_search; the upper floors register themselves
(signals, handlers) when the store needs them.
"""
