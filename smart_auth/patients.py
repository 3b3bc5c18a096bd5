"""The patient picker's search: Patients by name, through the FHIR search engine.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token
-- in a standalone launch with `launch/patient`, a person who may see several patients
chooses one on the authorize screen.
"""
from __future__ import annotations

from typing import TypedDict

import orjson

from smart_auth import endpoints

PICKER_SIZE = 10


class PatientChoice(TypedDict):
    id: str
    name: str
    birth_date: str


def _display_name(patient: dict) -> str:
    for name in patient.get("name", []):
        if name.get("text"):
            return name["text"]
        parts = [*name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return f"Patient {patient.get('id', '')}"


def find_patients(request, query: str) -> list[PatientChoice]:
    """Up to PICKER_SIZE patients whose name starts with `query` (any patient when blank)."""
    from fhir_search.service import search_bundle

    params = [("_count", str(PICKER_SIZE))]
    if query:
        params.insert(0, ("name", query))
    bundle = search_bundle(base=endpoints.fhir_base(request), path="Patient", resource_type="Patient",
                           params=params)
    choices: list[PatientChoice] = []
    for entry in bundle.get("entry", []):
        # Entries hold the stored bytes as an orjson Fragment; read the few fields we show.
        resource = orjson.loads(orjson.dumps(entry.get("resource", {})))
        if resource.get("resourceType") == "Patient":
            choices.append({"id": resource["id"], "name": _display_name(resource),
                            "birth_date": resource.get("birthDate", "")})
    return choices
