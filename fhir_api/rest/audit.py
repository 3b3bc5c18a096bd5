"""Every FHIR interaction leaves an AuditEvent (IHE BALP); this module says which and about what.

https://profiles.ihe.net/ITI/BALP/ -- the REST floor knows the interaction, the token and the
client's address. Writes are described by the store's recorder inside their transaction
(smart_auth.audit.trail.describe_writes, fed by the actor set here); everything else (reads,
searches, history, operations, failures, a write that changed nothing) is recorded here after
the answer is known, into the per-process buffer (no database round trip in the request).

Reading the audit trail is not audited itself: an AuditEvent per AuditEvent read would grow
the trail with every look at it (BALP leaves this to the server; so does HAPI).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest, HttpResponse

from fhir_api.rest.responses import base_url
from fhir_api.store import audit as store_audit, repository
from fhir_api.store.errors import FhirError
from fhir_search import consent as consent_sql
from smart_auth.access import Access
from smart_auth.audit import balp, trail

_WRITES = {"create": "create", "update": "update", "patch": "patch", "delete": "delete",
           "conditional_update": "update", "conditional_patch": "patch", "conditional_delete": "delete"}
_READS = {"read": "read", "vread": "vread", "search_type": "search-type", "search_system": "search-system",
          "search_compartment": "search-type"}
_OPERATIONS = {"system", "type", "instance"}
_UNAUDITED = {"capabilities"}  # the CapabilityStatement: public, no patient data


def actor_of(request: HttpRequest, access: Access | None) -> balp.Actor:
    address = request.META.get("REMOTE_ADDR", "")
    try:
        server = base_url(request)
    except Exception:  # noqa: BLE001 -- a bad Host header must not stop the audit record
        server = ""
    if access is None:
        return balp.Actor(address=address, server=server)
    return balp.Actor(address=address, client_id=access.client_id, user=access.fhir_user or "",
                      username="" if access.fhir_user else (f"user {access.user_id}" if access.user_id else ""),
                      token_id=access.token_id, purpose=access.purpose_of_use, server=server,
                      break_glass=access.break_glass)


def interaction_of(action: str, kwargs: dict[str, Any], request: HttpRequest) -> str | None:
    if action in _UNAUDITED:
        return None
    if action in _WRITES:
        return _WRITES[action]
    if action in _READS:
        return _READS[action]
    if action == "history":
        if "logical_id" in kwargs:
            return "history-instance"
        return "history-type" if "resource_type" in kwargs else "history-system"
    if action == "batch_or_transaction":
        return getattr(request, "audit_bundle_type", None) or "batch"
    if action in _OPERATIONS:
        return "operation"
    return action


@contextmanager
def acting(request: HttpRequest, action: str) -> Iterator[list[int]]:
    """Serve the request as its actor, so the store's recorder knows who wrote."""
    actor = request.audit_actor = actor_of(request, getattr(request, "access", None))
    with trail.acting(actor, action) as counter:
        yield counter


def _is_audit_read(kwargs: dict[str, Any], request: HttpRequest) -> bool:
    target = kwargs.get("resource_type")
    if target == store_audit.RESOURCE_TYPE:
        return True
    return target is None and request.GET.get("_type") == store_audit.RESOURCE_TYPE


def record(request: HttpRequest, action: str | None, kwargs: dict[str, Any], response: HttpResponse,
           written: list[int] | None, error: Exception | None = None) -> None:
    """After the answer: one buffered AuditEvent unless the store already recorded the write."""
    if action is None:
        return
    interaction = interaction_of(action, kwargs, request)
    if interaction is None:
        return
    status = response.status_code
    if status < 400 and _is_audit_read(kwargs, request):
        return  # reading the audit trail is not audited (no loop)
    if interaction in ("create", "update", "patch", "delete") and status < 400 and written and written[0]:
        return  # described inside the write's transaction
    trail.record(event_for(request, interaction, kwargs, status, error))


def event_for(request: HttpRequest, interaction: str, kwargs: dict[str, Any], status: int,
              error: Exception | None) -> dict[str, Any]:
    who = getattr(request, "audit_actor", None) or actor_of(request, getattr(request, "access", None))
    rtype, logical_id = kwargs.get("resource_type"), kwargs.get("logical_id")
    reference = None
    if rtype and logical_id and repository.valid_id(logical_id):  # a refused id ("a\x00b") is in outcomeDesc
        reference = f"{rtype}/{logical_id}"
        if kwargs.get("version_id"):
            reference += f"/_history/{kwargs['version_id']}"
    patient = _patient(request, interaction, kwargs, rtype, logical_id)
    query = None
    if interaction.startswith(("search", "history")):
        query = request.META.get("QUERY_STRING", "")
        if interaction == "search-type" and kwargs.get("compartment_type"):
            query = f"{kwargs['compartment_type']}/{kwargs['compartment_id']}/{rtype}?{query}"
    description = ""
    if error is not None:
        description = error.diagnostics if isinstance(error, FhirError) else type(error).__name__
    return balp.rest_event(who, interaction, status=status, description=description, reference=reference,
                           patient=patient, query=query, operation=kwargs.get("name"),
                           overridden=_set_aside(request, status))


def _set_aside(request: HttpRequest, status: int) -> tuple[str, ...]:
    """The resources of a break-the-glass answer that only ETREAT let through (one query per
    type, only for such requests): the read's resource, or a Bundle's entries."""
    access = getattr(request, "access", None)
    if access is None or not access.break_glass or status >= 400:
        return ()
    stored = getattr(request, "audit_stored", None)
    released = [(stored.resource_type, stored.logical_id)] if stored is not None else []
    released += getattr(request, "audit_released", ())
    return consent_sql.set_aside(access, released, "r")


def _patient(request: HttpRequest, interaction: str, kwargs: dict[str, Any], rtype: str | None,
             logical_id: str | None) -> str | None:
    """The patient whose data the interaction touched, when the request says which."""
    stored = getattr(request, "audit_stored", None)
    if stored is not None:
        if stored.resource_type == "Patient":
            return stored.logical_id  # without parsing the JSON the answer was sent as
        return balp.patient_of(stored.resource_type, stored.logical_id, stored.content)
    if rtype == "Patient" and logical_id:
        return logical_id
    if kwargs.get("compartment_type") == "Patient":
        return kwargs.get("compartment_id")
    for name in ("patient", "subject", "subject:Patient"):
        value = request.GET.get(name)
        if value and "," not in value and "\x00" not in value:
            ident = value.rsplit("/", 1)[-1] if value.startswith("Patient/") or "/" not in value else None
            if ident:
                return ident
    if not interaction.startswith(("search", "history")):
        return None
    access = getattr(request, "access", None)  # a patient-level token searches one patient's data
    return access.patient if access is not None and access.patient else None


def entry_failed(request: HttpRequest, method: str, url: str, error: FhirError) -> None:
    """A batch entry that failed (the batch goes on): recorded on its own."""
    interaction = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if interaction is None:
        return  # GET entries ran through a view, which recorded them
    path = url.partition("?")[0].split("/")
    kwargs = {"resource_type": path[0]} if path and path[0] else {}
    if len(path) > 1:
        kwargs["logical_id"] = path[1]
    trail.record(event_for(request, interaction, kwargs, error.status, error))
