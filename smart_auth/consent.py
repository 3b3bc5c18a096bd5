"""Patient-privacy Consents compiled into the rows the access SQL reads.

https://hl7.org/fhir/R4/consent.html -- an active Consent with scope `patient-privacy`
decides who may see (and change) the data of the patient it names. Its provision is
`permit` or `deny` and may hold nested provisions, the exceptions to it. A provision
applies when every criterion it has matches (any of its values): `actor` (the person
behind the token, the client app as its Device, or an Organization), `action`, `purpose`
(against the token's purpose of use), `class` (resource types), `code`, `securityLabel`
(against `meta.security`), `data` (particular resources), `period` (when the request is
made) and `dataPeriod` (when the data's care happened).

Deciding for one resource: the deepest provisions that apply decide; among siblings a deny
wins over a permit; an exception overrides its parent. So a resource is denied exactly when
some `deny` provision applies (with every provision above it) and none of its own
exceptions applies; see fhir_search.consent for that test in SQL. This module keeps the
rows (smart_auth.models.ConsentNode/ConsentCriterion) current: it runs on every write of a
Consent, inside the write's transaction, so a change is in force for the next request on
every server process, with no cache to go stale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fhir_api.store import repository
from fhir_api.store.datetimes import parse_range
from fhir_api.store.errors import FhirError, Unprocessable
from fhir_api.store.models import Resource
from smart_auth.access import BREAK_THE_GLASS, CLIENT_ID_SYSTEM, client_actor
from smart_auth.models import ConsentCriterion, ConsentNode

RESOURCE_TYPE = "Consent"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACTOR_TYPES = ("Patient", "Practitioner", "RelatedPerson", "Device", "Organization")
# http://terminology.hl7.org/CodeSystem/consentaction: which interactions each governs.
EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc)
READ_ACTIONS = frozenset({"access", "use", "disclose"})
WRITE_ACTIONS = frozenset({"collect", "correct"})


def is_patient_privacy(content: dict[str, Any] | None) -> bool:
    if not content or content.get("status") != "active":
        return False
    codings = (content.get("scope") or {}).get("coding") or []
    return any(c.get("code") == "patient-privacy" and c.get("system") in (SCOPE_SYSTEM, None) for c in codings)


@dataclass
class _Path:
    """What a provision and its parents require, as it is compiled downwards."""

    start: datetime | None = None
    end: datetime | None = None
    data_low: datetime | None = None
    data_high: datetime | None = None
    dated: bool = False
    reads: bool = True
    writes: bool = True
    classes: frozenset[str] | None = None  # None: any type
    purposes: frozenset[str] | None = None  # None: any purpose
    # (level, kind, system, value) of the per-level criteria
    criteria: list[tuple[int, str, str, str]] = field(default_factory=list)

    def impossible(self) -> bool:
        return ((self.start is not None and self.end is not None and self.start >= self.end)
                or (self.data_low is not None and self.data_high is not None and self.data_low >= self.data_high)
                or not (self.reads or self.writes)
                or self.classes == frozenset() or self.purposes == frozenset())


def _reference_parts(reference: str) -> tuple[str, str]:
    parts = reference.split("/")
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return "", reference


def patient_of(content: dict[str, Any]) -> str:
    kind, ident = _reference_parts(((content.get("patient") or {}).get("reference")) or "")
    if kind != "Patient" or not ident:
        raise Unprocessable("an active patient-privacy Consent must name its patient (Consent.patient: Patient/ID)")
    return ident


def _period(value: dict[str, Any] | None, where: str) -> tuple[datetime | None, datetime | None]:
    if not value:
        return None, None
    try:
        low = parse_range(value["start"])[0] if value.get("start") else None
        high = parse_range(value["end"])[1] if value.get("end") else None
    except ValueError:
        raise Unprocessable(f"{where} is not a valid Period") from None
    return low, high


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _narrow(known: frozenset[str] | None, named: list[str]) -> frozenset[str] | None:
    if not named:
        return known
    return frozenset(named) if known is None else known & frozenset(named)


def _actor(reference: str, where: str) -> str:
    kind, ident = _reference_parts(reference)
    if kind not in ACTOR_TYPES or not ident:
        raise Unprocessable(f"{where}: an actor must be a reference to one of {', '.join(ACTOR_TYPES)}")
    if kind != "Device":
        return f"{kind}/{ident}"
    # A client app is a Device that carries its client id: match tokens by the client id,
    # so the Consent need not change when the app's tokens do.
    try:
        device = repository.read("Device", ident).content
    except FhirError:
        raise Unprocessable(f"{where}: Device/{ident} does not exist") from None
    for identifier in device.get("identifier") or []:
        if identifier.get("system") == CLIENT_ID_SYSTEM and identifier.get("value"):
            return client_actor(identifier["value"])
    return f"Device/{ident}"  # a device that is no app: no token acts as it


def _codings(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in items if c.get("code")]


def _step(path: _Path, provision: dict[str, Any], level: int, where: str) -> _Path:
    """The path narrowed by one more provision's criteria."""
    start, end = _period(provision.get("period"), f"{where}.period")
    data_low, data_high = _period(provision.get("dataPeriod"), f"{where}.dataPeriod")
    actions = {c.get("code") for a in provision.get("action") or [] for c in a.get("coding") or []}
    out = _Path(
        start=_later(path.start, start), end=_earlier(path.end, end),
        data_low=_later(path.data_low, data_low), data_high=_earlier(path.data_high, data_high),
        dated=path.dated or bool(provision.get("dataPeriod")),
        reads=path.reads and (not actions or bool(actions & READ_ACTIONS)),
        writes=path.writes and (not actions or bool(actions & WRITE_ACTIONS)),
        classes=_narrow(path.classes, [c["code"] for c in _codings(provision.get("class") or [])]),
        purposes=_narrow(path.purposes, [c["code"] for c in _codings(provision.get("purpose") or [])]),
        criteria=list(path.criteria),
    )
    for i, actor in enumerate(provision.get("actor") or []):
        reference = (actor.get("reference") or {}).get("reference") or ""
        named = _actor(reference, f"{where}.actor[{i}]")
        kind = ConsentCriterion.ORGANIZATION if named.startswith("Organization/") else ConsentCriterion.ACTOR
        out.criteria.append((level, kind, "", named))
    for concept in provision.get("code") or []:
        for coding in _codings(concept.get("coding") or []):
            out.criteria.append((level, ConsentCriterion.CODE, coding.get("system") or "", coding["code"]))
    for coding in _codings(provision.get("securityLabel") or []):
        out.criteria.append((level, ConsentCriterion.LABEL, coding.get("system") or "", coding["code"]))
    for i, data in enumerate(provision.get("data") or []):
        kind, ident = _reference_parts(((data.get("reference") or {}).get("reference")) or "")
        if not kind or not ident:
            raise Unprocessable(f"{where}.data[{i}]: the reference must be Type/ID")
        out.criteria.append((level, ConsentCriterion.DATA, kind, ident))
    return out


def _group_kind(kind: str) -> str:
    """Actors of one provision are one criterion (any of them), whatever their type."""
    return ConsentCriterion.ACTOR if kind == ConsentCriterion.ORGANIZATION else kind


def _compile(consent: Resource, patient: str, provision: dict[str, Any], parent: ConsentNode | None,
             path: _Path, level: int, deny: bool, where: str, criteria: list[ConsentCriterion]) -> None:
    kind = provision.get("type")
    if kind not in ("permit", "deny", None):
        raise Unprocessable(f"{where}.type must be permit or deny")
    if kind is None and parent is None:
        raise Unprocessable(f"{where}.type is required: the Consent must say whether it permits or denies")
    deny = (kind == "deny") if kind is not None else not deny  # an untyped exception reverses its parent
    path = _step(path, provision, level, where)
    if path.impossible():
        return  # it can never apply; nor can anything beneath it
    rows = [(0, ConsentCriterion.CLASS, "", c) for c in sorted(path.classes or ())]
    rows += [(0, ConsentCriterion.PURPOSE, "", p) for p in sorted(path.purposes or ())]
    rows = list(dict.fromkeys(rows + path.criteria))
    groups = {g: i for i, g in enumerate(dict.fromkeys((level, _group_kind(kind)) for level, kind, _s, _v in rows))}
    node = ConsentNode.objects.create(
        consent=consent, patient_id=patient, parent=parent, deny=deny, start=path.start or EARLIEST,
        end=path.end or LATEST, data_low=path.data_low or EARLIEST, data_high=path.data_high or LATEST,
        dated=path.dated, reads=path.reads,
        writes=path.writes, names_etreat=path.purposes is not None and BREAK_THE_GLASS in path.purposes,
        groups=len(groups),
    )
    criteria.extend(ConsentCriterion(node=node, level=lv, kind=k, group=groups[(lv, _group_kind(k))], system=s, value=v)
                    for lv, k, s, v in rows)
    for i, child in enumerate(provision.get("provision") or []):
        _compile(consent, patient, child, node, path, level + 1, deny, f"{where}.provision[{i}]", criteria)


def written(resource: Resource, content: dict[str, Any] | None) -> None:
    """Replace the compiled rows of one Consent (its write's transaction; raises to refuse it)."""
    ConsentNode.objects.filter(consent=resource).delete()
    if not is_patient_privacy(content):
        return  # inactive, another scope, or deleted: it no longer decides anything
    assert content is not None
    patient = patient_of(content)
    provision = content.get("provision") or {}
    criteria: list[ConsentCriterion] = []
    if provision.get("type"):
        # Common practice (and this server's README): the root provision says permit or deny.
        _compile(resource, patient, provision, None, _Path(), 1, False, "Consent.provision", criteria)
    else:
        # R4: the root provision has no type; it is an exception to the base policy, which
        # the policyRule states (OPTIN: permit, OPTOUT: deny).
        base = _base_policy(content)
        node = ConsentNode.objects.create(consent=resource, patient_id=patient, parent=None, deny=base,
                                          start=EARLIEST, end=LATEST, data_low=EARLIEST, data_high=LATEST)
        if provision:
            _compile(resource, patient, provision, node, _Path(), 1, base, "Consent.provision", criteria)
    ConsentCriterion.objects.bulk_create(criteria)


# http://terminology.hl7.org/CodeSystem/v3-ActCode: the base a Consent's policyRule states.
PERMIT_POLICIES = frozenset({"OPTIN", "OPTINR"})
DENY_POLICIES = frozenset({"OPTOUT", "OPTOUTE"})


def _base_policy(content: dict[str, Any]) -> bool:
    """Whether the policyRule's base is deny (True) or permit (False)."""
    codes = {c.get("code") for c in (content.get("policyRule") or {}).get("coding") or []}
    if codes & DENY_POLICIES and not codes & PERMIT_POLICIES:
        return True
    if codes & PERMIT_POLICIES and not codes & DENY_POLICIES:
        return False
    raise Unprocessable("Consent.provision.type is required: the Consent must say whether it permits or denies "
                        "(or its policyRule must be OPTIN, OPTINR, OPTOUT or OPTOUTE, with an untyped root provision)")


def exists() -> bool:
    """Whether any Consent decides anything (when none does, access needs no consent SQL)."""
    return ConsentNode.objects.exists()
