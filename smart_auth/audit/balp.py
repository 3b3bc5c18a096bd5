"""AuditEvents shaped as IHE Basic Audit Log Patterns (BALP) say: who, what, when, from where.

https://profiles.ihe.net/ITI/BALP/ -- `type` (`rest`, or a DICOM security event), `subtype`
(the FHIR interaction), `action` (C R U D E), `recorded`, `outcome` (and `outcomeDesc` when
it failed), `purposeOfEvent` from the token; agents: the user (requestor, `who` their
fhirUser), the client app (DICOM "Source Role ID", its client id, the network address it
came from) and this server (DICOM "Destination Role ID"); `source` this server; entities:
the patient the data is about (BALP's Patient* profiles), the resource, and for a search the
query (base64, as BALP's Query profile says).

Break the glass (https://hl7.org/fhir/R4/security-labels.html#break-the-glass): an event of
a request made under break-the-glass (a token whose purpose is ETREAT, from a client registered
for it) carries `purposeOfEvent` ETREAT and the security label of a break-the-glass request,
v3-ActReason `BTG`, in `meta.security` (searchable: `_security`). Where the answer or the write
held a resource that the patient's Consent would have denied without it, the event also says
the override happened: a second `subtype`, DICOM 110127 "Emergency Override Started" (in R4's
audit-event-sub-type value set; the R5 break-glass example AuditEvent uses it), and one
`entity` per such resource whose `description` says its consent deny was set aside.

Never a token or a secret: an event names the token by its database id (agent.policy) only.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

PROFILE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
USER_AGENT_TYPES = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CLIENT_ID = "urn:ietf:params:oauth:client-id"
# The server's own codes for what BALP and DICOM have none for (OAuth steps, admin changes).
OAUTH_EVENTS = "urn:fhir-server:audit:oauth"
USER_IDS = "urn:fhir-server:user"
# The security label of a break-the-glass request (FHIR security-labels page).
BREAK_THE_GLASS_LABEL = {"system": ACT_REASON, "code": "BTG", "display": "break the glass"}
# A consent deny set aside by break-the-glass (DICOM CID 403, in R4's audit-event-sub-type).
EMERGENCY_OVERRIDE = {"system": DCM, "code": "110127", "display": "Emergency Override Started"}
OVERRIDDEN = "consent deny set aside by break-the-glass (ETREAT)"

REST = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
USER_AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
SECURITY_ALERT = {"system": DCM, "code": "110113", "display": "Security Alert"}

# The FHIR interaction -> (action, BALP profile when it succeeded and names a patient, without)
_INTERACTIONS = {
    "read": ("R", "PatientRead", "Read"),
    "vread": ("R", "PatientRead", "Read"),
    "history-instance": ("R", "PatientQuery", "Query"),
    "history-type": ("R", "PatientQuery", "Query"),
    "history-system": ("R", "PatientQuery", "Query"),
    "search-type": ("E", "PatientQuery", "Query"),
    "search-system": ("E", "PatientQuery", "Query"),
    "create": ("C", "PatientCreate", "Create"),
    "update": ("U", "PatientUpdate", "Update"),
    "patch": ("U", "PatientUpdate", "Update"),
    "delete": ("D", "PatientDelete", "Delete"),
    "batch": ("E", None, None),
    "transaction": ("E", None, None),
    "operation": ("E", None, None),
    "capabilities": ("R", None, None),
}
# Fields whose Patient reference says whose data a resource is (the Patient compartment's
# usual parameters); enough for the audit trail, which never drives access.
_PATIENT_FIELDS = ("subject", "patient", "beneficiary", "individual", "for")


@dataclass(frozen=True)
class Actor:
    """Who is behind a request, as far as the server knows (no secrets in here)."""

    address: str = ""  # the client's network address
    client_id: str = ""
    user: str = ""  # fhirUser ("Practitioner/12") or "" when none
    username: str = ""  # the account's name when there is no fhirUser
    token_id: int | None = None
    purpose: str = ""  # purpose of use code (v3-ActReason)
    server: str = ""  # this server's base URL
    break_glass: bool = False  # the token's ETREAT is in force (Access.break_glass)


def instant(at: datetime | None = None) -> str:
    t = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def outcome_code(status: int) -> str:
    """HTTP status -> AuditEvent.outcome: 0 success, 4 minor failure (the client's), 8 serious (ours)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def patient_of(resource_type: str, logical_id: str, content: dict[str, Any] | None) -> str | None:
    """The id of the patient whose data this is, if the resource says so."""
    if resource_type == "Patient":
        return logical_id
    if not content:
        return None
    for name in _PATIENT_FIELDS:
        ref = content.get(name)
        if isinstance(ref, dict):
            value = ref.get("reference")
            if isinstance(value, str) and value.startswith("Patient/"):
                return value[len("Patient/"):].split("/", 1)[0]
    return None


def _user_agent(actor: Actor, action: str) -> dict[str, Any] | None:
    if not actor.user and not actor.username:
        return None
    if actor.user.startswith("Patient/"):
        role = {"system": ROLE_CLASS, "code": "PAT", "display": "patient"}
    elif action in ("C", "U", "D"):
        role = {"system": PARTICIPATION, "code": "AUT", "display": "author (originator)"}
    else:
        role = {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
    codings = [role]
    if actor.token_id is not None:
        codings.append({"system": USER_AGENT_TYPES, "code": "UserOauthAgent", "display": "User OAuth Agent participant"})
    who: dict[str, Any] = ({"reference": actor.user} if actor.user
                           else {"identifier": {"system": USER_IDS, "value": actor.username}})
    agent: dict[str, Any] = {"type": {"coding": codings}, "who": who, "requestor": True}
    if actor.token_id is not None:
        agent["policy"] = [f"urn:fhir-server:token:{actor.token_id}"]
    return agent


def _client_agent(actor: Actor) -> dict[str, Any]:
    codings = [{"system": DCM, "code": "110153", "display": "Source Role ID"}]
    if actor.client_id:
        codings.append({"system": USER_AGENT_TYPES, "code": "ApplicationOauthAgent",
                        "display": "Application OAuth Agent participant"})
        who: dict[str, Any] = {"identifier": {"system": CLIENT_ID, "value": actor.client_id}}
    else:
        who = {"display": "unauthenticated client"}
    agent: dict[str, Any] = {"type": {"coding": codings}, "who": who, "requestor": not (actor.user or actor.username)}
    if actor.address:
        agent["network"] = {"address": actor.address, "type": "2"}  # 2: IP address
    return agent


def _server_agent(actor: Actor) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": actor.server or "this server"},
        "requestor": False,
    }
    if actor.server:
        agent["network"] = {"address": actor.server, "type": "5"}  # 5: URI
    return agent


def patient_entity(patient_id: str) -> dict[str, Any]:
    return {
        "what": {"reference": f"Patient/{patient_id}"},
        "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
    }


def resource_entity(reference: str) -> dict[str, Any]:
    return {
        "what": {"reference": reference},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
    }


def query_entity(query: str) -> dict[str, Any]:
    """The search as BALP's Query profile records it: the query string, base64."""
    clean = scrub_query(query)
    return {
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
        "description": clean[:1000],
        "query": base64.b64encode(clean.encode()).decode("ascii"),
    }


def scrub_query(query: str) -> str:
    """A query string without any token a client put in it (refused, but still not recorded)."""
    if "token" not in query.lower():
        return query
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if "token" not in k.lower()]
    return urlencode(pairs)


@lru_cache(maxsize=256)
def _parties(actor: Actor, action: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The agents and source of an actor's events, built once: a transaction of 3,000 entries
    shares them (the events are serialised right away and never changed)."""
    agents = [a for a in (_user_agent(actor, action), _client_agent(actor), _server_agent(actor)) if a]
    source = {
        "observer": {"display": actor.server or "this server"},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    return agents, source


def event(
    actor: Actor,
    *,
    type_: dict[str, str],
    subtype: dict[str, str],
    action: str,
    status: int = 200,
    description: str = "",
    entities: list[dict[str, Any]] | None = None,
    patient: str | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """One AuditEvent (JSON, without id and meta.versionId: the store assigns those)."""
    out: dict[str, Any] = {"resourceType": "AuditEvent"}
    outcome = outcome_code(status)
    meta: dict[str, Any] = {}
    if profile and outcome == "0":
        meta["profile"] = [PROFILE + profile]
    if actor.break_glass:
        meta["security"] = [dict(BREAK_THE_GLASS_LABEL)]
    if meta:
        out["meta"] = meta
    out.update(type=type_, subtype=[subtype], action=action, recorded=instant(), outcome=outcome)
    if outcome != "0":
        out["outcomeDesc"] = (f"{status} {description}".strip())[:1000]
    if actor.purpose:
        out["purposeOfEvent"] = [{"coding": [{"system": ACT_REASON, "code": actor.purpose}]}]
    out["agent"], out["source"] = _parties(actor, action)
    listed = ([patient_entity(patient)] if patient else []) + list(entities or ())
    if listed:
        out["entity"] = listed
    return out


def rest_event(actor: Actor, interaction: str, *, status: int = 200, description: str = "",
               reference: str | None = None, patient: str | None = None, query: str | None = None,
               operation: str | None = None, overridden: tuple[str, ...] = ()) -> dict[str, Any]:
    """A FHIR REST interaction (BALP Read, Query, Create, Update, Delete and their Patient* forms).

    `overridden`: the resources ("Type/id") the request reached only because break-the-glass
    set their patient's consent deny aside."""
    action, with_patient, without = _INTERACTIONS.get(interaction, ("E", None, None))
    entities = []
    if reference:
        entities.append(resource_entity(reference))
    if query is not None and interaction.startswith(("search", "history")):
        entities.append(query_entity(query))
    subtype = {"system": INTERACTION, "code": interaction}
    if operation:
        subtype = {"system": INTERACTION, "code": "operation", "display": f"${operation}"}
    out = event(actor, type_=REST, subtype=subtype, action=action, status=status, description=description,
                entities=entities, patient=patient, profile=with_patient if patient else without)
    if overridden:
        mark_override(out, overridden)
    return out


def mark_override(event_: dict[str, Any], references: tuple[str, ...]) -> None:
    """Say in an event that break-the-glass set a consent deny aside for these resources."""
    event_["subtype"] = [*event_["subtype"], dict(EMERGENCY_OVERRIDE)]
    entities = event_.setdefault("entity", [])
    for reference in references:
        entity = resource_entity(reference)
        entity["description"] = OVERRIDDEN
        entities.append(entity)


def security_event(actor: Actor, code: str, display: str, *, status: int = 200, description: str = "",
                   login: bool = False, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An authorization step (code issued, token granted, refreshed, revoked, introspected,
    denied) or a sign-in (DICOM Login/Logout subtypes): type DICOM "User Authentication"."""
    subtype = {"system": DCM if login else OAUTH_EVENTS, "code": code, "display": display}
    return event(actor, type_=USER_AUTHENTICATION, subtype=subtype, action="E", status=status,
                 description=description, entities=entities)


def admin_event(actor: Actor, action: str, label: str, object_id: str, display: str) -> dict[str, Any]:
    """A change made in the staff admin to something that is not a FHIR resource (apps, people,
    tokens): DICOM "Security Alert", the object named by its model and primary key."""
    entity = {
        "what": {"identifier": {"system": f"urn:fhir-server:admin:{label}", "value": object_id},
                 "display": display[:200]},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
    }
    names = {"C": "admin-add", "U": "admin-change", "D": "admin-delete"}
    subtype = {"system": OAUTH_EVENTS, "code": names[action], "display": f"admin {names[action][6:]}"}
    return event(actor, type_=SECURITY_ALERT, subtype=subtype, action=action, entities=[entity])
