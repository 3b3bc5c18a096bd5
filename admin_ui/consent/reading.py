"""A Consent as staff read it: each provision's decision, for whom, what, why and when.

https://hl7.org/fhir/R4/consent.html -- read the way smart_auth.consent enforces it: a
provision without `type` is the opposite of the one above it; an untyped root provision is an
exception to the base its `policyRule` states (OPTIN/OPTINR permit, OPTOUT/OPTOUTE deny).
People, apps and organizations are shown by name where this server knows them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from admin_ui.consent import choices
from admin_ui.resources import columns
from admin_ui.resources.links import resource_url
from fhir_api.store import jsonio
from fhir_api.store.models import Resource
from smart_auth.consent import DENY_POLICIES, PERMIT_POLICIES
from smart_auth.models import Client


@dataclass(frozen=True)
class Named:
    text: str
    url: str = ""


@dataclass
class Provision:
    decision: str  # "permit" or "deny"
    stated: bool  # False: no `type`, the opposite of the provision above
    who: list[Named] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    data: list[Named] = field(default_factory=list)
    purposes: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    period: str = ""
    data_period: str = ""
    exceptions: list[Provision] = field(default_factory=list)

    @property
    def everything(self) -> bool:
        """No criterion: the provision applies to every request about the patient's data."""
        return not (self.who or self.types or self.labels or self.codes or self.data or self.purposes
                    or self.actions or self.period or self.data_period)


@dataclass
class Reading:
    base: str  # "" when the root provision states its own decision; else "permit"/"deny"
    base_rule: str
    root: Provision | None


def name_of(reference: str) -> Named:
    """A reference with the name of what it points at (a person, an organization, an app)."""
    kind, _, ident = reference.rpartition("/")
    kind = kind.rsplit("/", 1)[-1]
    local = f"{kind}/{ident}" if kind else reference
    row = Resource.objects.filter(resource_type=kind, logical_id=ident, deleted=False).only("data").first()
    if row is None:
        return Named(f"{local} (not on this server)")
    content = jsonio.loads(row.data)
    if kind == "Device":
        client = Client.objects.filter(device_id=ident).only("name", "client_id").first()
        name = f"app {client.name}" if client else "device"
    elif kind == "Organization":
        name = str(content.get("name") or "")
    else:
        name = columns.human_name(content.get("name"))
    return Named(f"{name} ({local})" if name else local, resource_url(local))


def _period(value: Any) -> str:
    return columns.period(value) if isinstance(value, dict) else ""


def provision_of(provision: dict[str, Any], parent_decision: str) -> Provision:
    stated = provision.get("type") in ("permit", "deny")
    decision = provision["type"] if stated else ("permit" if parent_decision == "deny" else "deny")
    out = Provision(decision=decision, stated=stated)
    for actor in provision.get("actor") or []:
        reference = (actor.get("reference") or {}).get("reference")
        out.who.append(name_of(reference) if reference else Named(columns.concept(actor.get("role"))))
    out.types = [c.get("code", "") for c in provision.get("class") or []]
    out.labels = [choices.label_text(c.get("system", ""), c.get("code", ""))
                  for c in provision.get("securityLabel") or []]
    out.codes = [columns.concept(c) for c in provision.get("code") or []]
    for item in provision.get("data") or []:
        reference = (item.get("reference") or {}).get("reference") or ""
        out.data.append(Named(f"{reference} ({item.get('meaning', 'instance')})", resource_url(reference)))
    out.purposes = [choices.purpose_text(c.get("code", "")) for c in provision.get("purpose") or []]
    out.actions = [columns.concept(a) for a in provision.get("action") or []]
    out.period = _period(provision.get("period"))
    out.data_period = _period(provision.get("dataPeriod"))
    out.exceptions = [provision_of(child, decision) for child in provision.get("provision") or []
                      if isinstance(child, dict)]
    return out


def reading_of(content: dict[str, Any]) -> Reading:
    provision = content.get("provision")
    if not isinstance(provision, dict):
        provision = {}
    if provision.get("type") in ("permit", "deny"):
        return Reading("", "", provision_of(provision, ""))
    codes = {c.get("code") for c in (content.get("policyRule") or {}).get("coding") or []}
    base = "deny" if codes & DENY_POLICIES and not codes & PERMIT_POLICIES else (
        "permit" if codes & PERMIT_POLICIES and not codes & DENY_POLICIES else "")
    rule = ", ".join(sorted(c for c in codes if c))
    return Reading(base, rule, provision_of(provision, base) if provision and base else None)


def decision_of(content: dict[str, Any]) -> str:
    """What the Consent decides where its root provision applies ("" when it cannot be told)."""
    reading = reading_of(content)
    return reading.root.decision if reading.root and not reading.base else reading.base


def actors_in(provision: dict[str, Any]) -> set[str]:
    """Every actor reference (`Type/id`) of a provision and its exceptions, at any depth."""
    found = set()
    for actor in provision.get("actor") or []:
        reference = str((actor.get("reference") or {}).get("reference") or "")
        if reference:
            found.add("/".join(reference.rsplit("/", 2)[-2:]))
    for child in provision.get("provision") or []:
        if isinstance(child, dict):
            found |= actors_in(child)
    return found
