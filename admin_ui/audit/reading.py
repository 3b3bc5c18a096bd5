"""An AuditEvent as staff read it: when, what, who, which app, about whom, and how it ended.

https://profiles.ihe.net/ITI/BALP/ -- the agents are told apart by their type codes (the user
is the requestor with a `who`; the app is DICOM "Source Role ID", named by its OAuth client
id; the server is "Destination Role ID"); the patient is the entity with role 1; a search's
query is the entity with role 24, whose `query` is base64.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from admin_ui.resources import columns
from admin_ui.resources.links import resource_url
from smart_auth.audit import balp

ACTIONS = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}
OUTCOMES = {"0": "success", "4": "refused", "8": "server error", "12": "major failure"}


@dataclass(frozen=True)
class Link:
    text: str
    url: str = ""


@dataclass
class Agent:
    role: str
    who: Link
    requestor: bool
    address: str = ""
    policy: str = ""


@dataclass
class Summary:
    id: str
    recorded: str
    when: str  # recorded, as a person reads it (UTC)
    kind: str
    what: str
    action: str
    outcome: str
    failed: bool
    outcome_text: str
    purpose: str
    user: Link | None
    app: str  # the OAuth client id
    address: str
    patient: Link | None
    objects: list[Link] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    app_name: str = ""  # the registered app's name, when the client id is known here


def _codes(value: Any) -> set[str]:
    codings = value.get("coding", []) if isinstance(value, dict) else []
    return {c.get("code", "") for c in codings if isinstance(c, dict)}


def _who(who: Any) -> Link:
    if not isinstance(who, dict):
        return Link("")
    reference = who.get("reference")
    if reference:
        return Link(str(reference), resource_url(str(reference)))
    identifier = who.get("identifier") or {}
    if identifier.get("value"):
        system = identifier.get("system", "")
        if system == balp.CLIENT_ID:
            return Link(f"app {identifier['value']}")
        if system == balp.USER_IDS:
            return Link(f"account {identifier['value']}")
        return Link(f"{identifier['value']} ({system})" if system else str(identifier["value"]))
    return Link(str(who.get("display") or ""))


def _agent(agent: dict[str, Any]) -> Agent:
    codes = _codes(agent.get("type"))
    if "110153" in codes:
        role = "app (source)"
    elif "110152" in codes:
        role = "server (destination)"
    else:
        role = ", ".join(c.get("display") or c.get("code", "") for c in (agent.get("type") or {}).get("coding", [])
                         if "BALP" not in c.get("system", "")) or "user"
    network = agent.get("network") or {}
    return Agent(role=role, who=_who(agent.get("who")), requestor=bool(agent.get("requestor")),
                 address=str(network.get("address") or ""), policy=", ".join(agent.get("policy") or []))


def _query(entity: dict[str, Any]) -> str:
    if entity.get("description"):
        return str(entity["description"])
    try:
        return base64.b64decode(entity.get("query", ""), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def summary_of(event: dict[str, Any]) -> Summary:
    subtype = (event.get("subtype") or [{}])[0] if isinstance(event.get("subtype"), list) else {}
    agents = [_agent(a) for a in event.get("agent") or [] if isinstance(a, dict)]
    user = next((a for a in agents if a.role not in ("app (source)", "server (destination)")), None)
    app = next((a for a in agents if a.role == "app (source)"), None)
    patient, objects, queries = None, [], []
    for entity in event.get("entity") or []:
        if not isinstance(entity, dict):
            continue
        role = (entity.get("role") or {}).get("code")  # entity.role is a Coding (object-role)
        what = _who(entity.get("what"))
        if role == "1" and patient is None:
            patient = what
        elif role == "24":
            queries.append(_query(entity))
        elif what.text:
            display = (entity.get("what") or {}).get("display")
            objects.append(Link(f"{what.text}: {display}" if display else what.text, what.url))
    outcome = str(event.get("outcome", ""))
    purposes = [c.get("code", "") for p in event.get("purposeOfEvent") or [] for c in p.get("coding", [])]
    return Summary(
        id=str(event.get("id", "")), recorded=str(event.get("recorded", "")),
        when=str(event.get("recorded", "")).replace("T", " ").removesuffix("Z")[:23],
        kind=columns.concept(event.get("type")),
        what=str(subtype.get("display") or subtype.get("code") or ""),
        action=ACTIONS.get(event.get("action", ""), str(event.get("action", ""))),
        outcome=OUTCOMES.get(outcome, outcome), failed=outcome not in ("", "0"),
        outcome_text=str(event.get("outcomeDesc", "")), purpose=", ".join(purposes),
        user=user.who if user else None,
        app=app.who.text.removeprefix("app ") if app and app.who.text.startswith("app ") else "",
        address=app.address if app else "", patient=patient, objects=objects, queries=queries, agents=agents,
    )
