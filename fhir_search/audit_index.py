"""Index rows of appended AuditEvents, built from their known fields (no FHIRPath).

https://hl7.org/fhir/R4/auditevent.html#search -- the server writes an AuditEvent for every
interaction, so indexing one must cost far less than the read it records: the generic
extractor takes 0.2 to 1 ms per event (22 parameters, `resolve()`, full text), this takes
a few microseconds for the parameters the audit trail is searched by (`LEAN_CODES`). The
rows are the very rows the generic extractor makes for those parameters (the same column
builders; tests/fhir_search/test_audit_index.py compares them), so `$reindex` of an
AuditEvent only adds the other parameters' rows.
"""
from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import Any

from django.db import models
from django.dispatch import receiver

from fhir_api.store.audit import RESOURCE_TYPE, audit_appended
from fhir_api.store.models import Resource
from fhir_search.extraction import Context, Typed
from fhir_search.indexing import insert_rows
from fhir_search.params import param_type
from fhir_search.registry import SearchParam, registry

# `_security`: the break-the-glass label (smart_auth.audit.balp); most events have no row of it.
LEAN_CODES = ("date", "type", "subtype", "action", "outcome", "agent", "entity", "patient", "_security")
# `code` elements take their system from the element's binding (fhir_search.converters).
_CODE_SYSTEMS = {"action": "http://hl7.org/fhir/audit-event-action", "outcome": "http://hl7.org/fhir/audit-event-outcome"}


@cache
def _params() -> dict[str, SearchParam]:
    params = registry().for_type(RESOURCE_TYPE)
    return {code: params[code] for code in LEAN_CODES if code in params}


def _values(code: str, event: dict[str, Any]) -> list[Typed]:
    """What parameter `code` finds in `event` (R4 AuditEvent search parameter expressions)."""
    if code == "date":
        return [Typed("instant", event["recorded"], "instant")] if "recorded" in event else []
    if code == "type":
        return [Typed("Coding", event["type"], "Coding")] if "type" in event else []
    if code == "subtype":
        return [Typed("Coding", c, "Coding") for c in event.get("subtype", ())]
    if code == "agent":
        return [Typed("Reference", a["who"], "Reference") for a in event.get("agent", ()) if "who" in a]
    if code == "entity":
        return [Typed("Reference", e["what"], "Reference") for e in event.get("entity", ()) if "what" in e]
    if code == "_security":
        return [Typed("Coding", c, "Coding") for c in (event.get("meta") or {}).get("security", ())]
    if code == "patient":  # agent.who | entity.what, where(resolve() is Patient)
        refs = [a.get("who") for a in event.get("agent", ())] + [e.get("what") for e in event.get("entity", ())]
        return [Typed("Reference", r, "Reference") for r in refs
                if isinstance(r, dict) and str(r.get("reference", "")).startswith("Patient/")]
    return []


def rows_of(resource: Resource, event: dict[str, Any]) -> dict[type[models.Model], list[dict[str, Any]]]:
    out: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
    context = Context(event)
    for code, param in _params().items():
        ptype = param_type(param)
        if code in _CODE_SYSTEMS:
            if event.get(code) is not None:
                out[ptype.model].append({"system": _CODE_SYSTEMS[code], "value": event[code], "text": None,
                                         "type_system": None, "type_code": None,
                                         "resource_id": resource.pk, "resource_type": RESOURCE_TYPE, "code": code})
            continue
        seen = set()
        for typed in _values(code, event):
            for cols in ptype.rows(param, typed, context):
                key = tuple(cols.items())
                if key not in seen:
                    seen.add(key)
                    for name, value in cols.items():  # PostgreSQL text holds no NUL (a refused id)
                        if isinstance(value, str) and "\x00" in value:
                            cols[name] = value.replace("\x00", "\ufffd")
                    cols.update(resource_id=resource.pk, resource_type=RESOURCE_TYPE, code=code)
                    out[ptype.model].append(cols)
    return out


@receiver(audit_appended, sender=Resource, dispatch_uid="fhir_search.audit_appended")
def index_appended(sender: type[Resource], items: list[tuple[Resource, dict[str, Any]]], **kwargs: Any) -> None:
    grouped: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
    for resource, event in items:
        for table, rows in rows_of(resource, event).items():
            grouped[table].extend(rows)
    for table, rows in grouped.items():
        insert_rows(table, rows)
