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

import orjson
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


def _values(code: str, event: dict[str, Any]) -> list[tuple[str, Any]]:
    """(type, JSON value) of what parameter `code` finds in `event` (R4 AuditEvent search
    parameter expressions)."""
    if code == "date":
        return [("instant", event["recorded"])] if "recorded" in event else []
    if code == "type":
        return [("Coding", event["type"])] if "type" in event else []
    if code == "subtype":
        return [("Coding", c) for c in event.get("subtype", ())]
    if code == "agent":
        return [("Reference", a["who"]) for a in event.get("agent", ()) if "who" in a]
    if code == "entity":
        return [("Reference", e["what"]) for e in event.get("entity", ()) if "what" in e]
    if code == "_security":
        return [("Coding", c) for c in (event.get("meta") or {}).get("security", ())]
    if code == "patient":  # agent.who | entity.what, where(resolve() is Patient)
        refs = [a.get("who") for a in event.get("agent", ())] + [e.get("what") for e in event.get("entity", ())]
        return [("Reference", r) for r in refs
                if isinstance(r, dict) and str(r.get("reference", "")).startswith("Patient/")]
    return []


# The rows of one value of one parameter, without the event's row id: an event's type,
# subtype, agents and patient are those of every event of the same request (a transaction of
# 300 entries makes 300 events that differ only in their resource entity), so most rows come
# from here rather than from the converters (rows_of went from 54 to ~15 us an event).
_ROWS: dict[tuple[str, str, bytes], tuple[tuple[type[models.Model], dict[str, Any]], ...]] = {}
_ROWS_KEPT = 4096


def _rows_of_value(code: str, param: SearchParam, type_: str, value: Any):
    key = (code, type_, orjson.dumps(value))
    found = _ROWS.get(key)
    if found is None:
        ptype = param_type(param)
        # AuditEvents have no contained resources, so the rows depend on the value alone.
        context = Context({"resourceType": RESOURCE_TYPE})
        rows, seen = [], set()
        for cols in ptype.rows(param, Typed(type_, value, type_), context):
            if (columns := tuple(cols.items())) in seen:
                continue
            seen.add(columns)
            for name, v in cols.items():  # PostgreSQL text holds no NUL (a refused id)
                if isinstance(v, str) and "\x00" in v:
                    cols[name] = v.replace("\x00", "\ufffd")
            cols.update(resource_type=RESOURCE_TYPE, code=code)
            rows.append((ptype.model, cols))
        found = tuple(rows)
        if "/_history/" not in str(value.get("reference", "") if isinstance(value, dict) else ""):
            # (a reference to one version names one write: it comes once, so it is not kept)
            if len(_ROWS) >= _ROWS_KEPT:
                _ROWS.clear()
            _ROWS[key] = found
    return found


def rows_of(resource: Any, event: dict[str, Any]) -> dict[type[models.Model], list[dict[str, Any]]]:
    """The lean index rows of one appended event (`resource`: its row, for the id)."""
    out: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
    pk = resource.pk
    for code, param in _params().items():
        if code in _CODE_SYSTEMS:
            if event.get(code) is not None:
                out[param_type(param).model].append({
                    "system": _CODE_SYSTEMS[code], "value": event[code], "text": None, "type_system": None,
                    "type_code": None, "resource_id": pk, "resource_type": RESOURCE_TYPE, "code": code})
            continue
        values = _values(code, event)
        if len(values) == 1:
            for model, cols in _rows_of_value(code, param, *values[0]):
                out[model].append({**cols, "resource_id": pk})
            continue
        seen = set()
        for type_, value in values:
            for model, cols in _rows_of_value(code, param, type_, value):
                key = tuple(cols.items())
                if key not in seen:
                    seen.add(key)
                    out[model].append({**cols, "resource_id": pk})
    return out


@receiver(audit_appended, sender=Resource, dispatch_uid="fhir_search.audit_appended")
def index_appended(sender: type[Resource], items: list[tuple[Any, dict[str, Any]]], **kwargs: Any) -> None:
    grouped: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
    for resource, event in items:
        for table, rows in rows_of(resource, event).items():
            grouped[table].extend(rows)
    for table, rows in grouped.items():
        insert_rows(table, rows)
