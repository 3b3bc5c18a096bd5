"""The REST surface: the top floor of fhir_api (routing, views per interaction level, formats,
Bundles, operations, the CapabilityStatement, rendering errors as OperationOutcomes).
"""
