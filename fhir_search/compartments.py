"""Compartments (https://hl7.org/fhir/R4/compartmentdefinition.html).

`GET /fhir/Patient/123/Observation` searches the Observations in Patient 123's compartment:
those whose compartment parameters (subject, performer) refer to Patient/123. The official
CompartmentDefinitions the project ships say which parameters link each type.
"""
from __future__ import annotations

from functools import cache

import orjson
from django.db.models import Q

from fhir_api.store.audit import RESOURCE_TYPE as AUDIT_TYPE
from fhir_api.store.errors import BadRequest, NotFound
from fhir_api.store.structure import DEFINITIONS
from fhir_search.models import ReferenceIndex
from fhir_search.query.build import NOTHING
from fhir_search.registry import registry


@cache
def definitions() -> dict[str, dict[str, tuple[str, ...]]]:
    """Compartment type -> {resource type in it -> the parameters that link it}."""
    bundle = orjson.loads((DEFINITIONS / "compartmentdefinitions.json").read_bytes())
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for entry in bundle["entry"]:
        cd = entry["resource"]
        members = {r["code"]: tuple(r["param"]) for r in cd.get("resource", ()) if r.get("param")}
        out[cd["code"]] = members
    return out


def member_types(compartment_type: str) -> tuple[str, ...]:
    """The types a compartment holds, for `[Patient/1]/*` and `$everything`: the audit trail is
    about the patient's record, not part of it (`Patient/1/AuditEvent` still works)."""
    members = definitions().get(compartment_type)
    if members is None:
        raise NotFound(f"There is no {compartment_type} compartment", code="not-supported")
    return tuple(sorted(t for t in members if t != AUDIT_TYPE))


def condition(compartment_type: str, compartment_id: str, resource_type: str) -> Q:
    """Rows of `resource_type` in the compartment of `compartment_type`/`compartment_id`."""
    params = member_params(compartment_type, resource_type)
    if not params:
        return NOTHING
    links = ReferenceIndex.objects.filter(
        resource_type=resource_type, code__in=params, target_type=compartment_type, target_id=compartment_id
    )
    return Q(resource_type=resource_type, pk__in=links.values("resource_id"))


def member_params(compartment_type: str, resource_type: str) -> tuple[str, ...]:
    members = definitions().get(compartment_type)
    if members is None:
        raise NotFound(f"There is no {compartment_type} compartment", code="not-supported")
    if resource_type not in members:
        raise BadRequest(f"{resource_type} resources are not in the {compartment_type} compartment")
    # Some parameters a definition names are not reference parameters of the type
    # (e.g. Claim "procedure-udi" for Device); only references can link a compartment.
    return tuple(c for c in members[resource_type]
                 if (p := registry().get(resource_type, c)) is not None and p.type == "reference")
