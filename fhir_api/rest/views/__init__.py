"""FHIR REST views, one module per interaction level (https://hl7.org/fhir/R4/http.html)."""
