"""What the CapabilityStatement can say about search (https://hl7.org/fhir/R4/capabilitystatement.html)."""

from __future__ import annotations

from fhir_search.capability import search_includes, search_param_entries, search_revincludes


def test_search_params_of_a_type_with_definition_and_documentation():
    entries = {e["name"]: e for e in search_param_entries("Patient")}
    assert entries["family"]["type"] == "string"
    assert entries["family"]["definition"] == "http://hl7.org/fhir/SearchParameter/individual-family"
    assert entries["_id"]["type"] == "token"
    assert entries["birthdate"]["documentation"]
    assert entries["_text"]["type"] == "string"  # full text (test_text.py)
    assert entries["_filter"]["type"] == "special"
    assert "_query" not in entries  # not supported
    assert "near" not in entries  # a Location parameter (test_near.py)


def test_includes_and_revincludes():
    assert "Observation:patient" in search_includes("Observation")
    assert "Observation:subject" in search_revincludes("Patient")
    assert "Provenance:target" in search_revincludes("Patient")
    assert search_revincludes("Patient")[0] == "*"  # any reference to the matches (test_include.py)
