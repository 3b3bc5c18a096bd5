"""Patient consent as SQL: the rows of a patient's data the token's Consents let through.

https://hl7.org/fhir/R4/consent.html -- smart_auth.consent compiles each active
patient-privacy Consent into provision rows (ConsentNode) and their criteria
(ConsentCriterion). A resource is the data of a patient when it is that Patient or its
Patient-compartment parameters refer to the patient. It is denied when some deny provision
of one of its patients applies to this request and this resource (with every provision
above it: each row carries its whole path) and none of that provision's exceptions does:
the deepest applying provision decides, and a deny wins over a permit beside it. With
FHIR_CONSENT_DEFAULT=deny a patient's data also needs an applying permit that no exception
overrides. Break-the-glass (Access.break_glass) sets aside deny provisions that do not name
ETREAT, and the default of deny.

The test is correlated NOT EXISTS subqueries on indexed columns (a resource's references
by resource id, provisions by patient), so the planner probes per resource when few are in
play (a read) and joins when many are (a search); a patient without Consent costs one index
probe. When no Consent exists at all and the default is permit, no SQL is added.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache, reduce
from operator import or_

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact
from django.utils import timezone

from fhir_search import compartments
from fhir_search.care_dates import care_date_param
from fhir_search.models import DateIndex, ReferenceIndex, TokenIndex
from smart_auth.access import CLIENT_ID_SYSTEM, Access, ConsentCriterion, ConsentNode

C = ConsentCriterion
WRITES = frozenset("cud")
# The parameters whose values a provision's `code` and `securityLabel` are compared with.
CODE_PARAM, LABEL_PARAM = "code", "_security"


@dataclass(frozen=True)
class _Request:
    """What the provisions are matched against, besides the resource."""

    actors: tuple[str, ...]  # the person, the app, their Organizations
    purpose: str
    break_glass: bool
    reading: bool
    now: datetime
    resource_type: str | None  # None: any type (the outer rows carry it)


def _outer(name: str, depth: int):
    """The outer resource row's column `name`, seen from `depth` subqueries down."""
    ref = OuterRef(name)
    for _ in range(depth - 1):
        ref = OuterRef(ref)
    return ref


@cache
def _patient_links() -> dict[str, tuple[str, ...]]:
    """Type -> its reference parameters that put it in a patient's compartment."""
    out = {}
    for resource_type in compartments.definitions().get("Patient", {}):
        if resource_type != "Patient":
            params = compartments.member_params("Patient", resource_type)
            if params:
                out[resource_type] = params
    return out


@cache
def _care_dates() -> dict[str, str]:
    return {t: p for t in _patient_links() if (p := care_date_param(t)) is not None}


def _by_type(pairs: dict[str, str | tuple[str, ...]]) -> Q:
    """Index rows of the (type, parameter) pairs given, grouping types that share parameters."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for resource_type, params in pairs.items():
        groups.setdefault((params,) if isinstance(params, str) else params, []).append(resource_type)
    return reduce(or_, (Q(resource_type__in=types, code__in=params) for params, types in groups.items()))


def _tokens_match(param: str, depth: int) -> Exists:
    """The resource (at `depth`) has a `param` value equal to the criterion's (one up; a
    criterion without a system matches the code in any system)."""
    rows = TokenIndex.objects.filter(resource=_outer("pk", depth), code=param, value=OuterRef("value"))
    return Exists(rows.filter(Q(system=OuterRef("system")) | Q(Exact(OuterRef("system"), ""))))


def _organizations(access: Access) -> tuple[str, ...]:
    """The Organizations acting with the token, as "Organization/id": those of the person's
    PractitionerRoles, and the owner of the app's Device. Looked up (one query) only while
    some Consent names an Organization; a literal list keeps the consent SQL shallow."""
    if not access.organization_consents:
        return ()
    kind, _, ident = (access.fhir_user or "").partition("/")
    devices = TokenIndex.objects.filter(resource_type="Device", code="identifier", system=CLIENT_ID_SYSTEM,
                                        value=access.client_id)
    mine = Q(resource_type="Device", code="organization", resource__in=devices.values("resource_id"))
    if kind == "Practitioner":
        roles = ReferenceIndex.objects.filter(resource_type="PractitionerRole", code="practitioner",
                                              target_type="Practitioner", target_id=ident)
        mine |= Q(resource_type="PractitionerRole", code="organization", resource__in=roles.values("resource_id"))
    found = ReferenceIndex.objects.filter(mine, target_type="Organization").values_list("target_id", flat=True)
    return tuple(sorted({f"Organization/{target}" for target in found}))


def _satisfied(depth: int, req: _Request) -> Q:
    """On criteria rows (the resource at `depth`): this value is met by the request or the resource."""
    of_type = req.resource_type or _outer("resource_type", depth)
    met = Q(kind=C.CLASS, value=of_type) | Q(kind=C.DATA, system=of_type, value=_outer("logical_id", depth))
    if req.actors:
        met |= Q(kind__in=(C.ACTOR, C.ORGANIZATION), value__in=req.actors)
    if req.purpose:
        met |= Q(kind=C.PURPOSE, value=req.purpose)
    for kind, param in ((C.CODE, CODE_PARAM), (C.LABEL, LABEL_PARAM)):
        met |= Q(kind=kind) & _tokens_match(param, depth + 1)
    return met


def _in_data_period(depth: int, req: _Request) -> Exists:
    """The resource's care date (at `depth`) lies within the provision's dataPeriod (one up)."""
    rows = DateIndex.objects.filter(resource=_outer("pk", depth), low__gte=OuterRef("data_low"),
                                    high__lte=OuterRef("data_high"))
    if req.resource_type is not None:
        code = _care_dates().get(req.resource_type)
        rows = rows.filter(code=code) if code else rows.none()
    else:
        rows = rows.filter(_by_type(_care_dates()))
    return Exists(rows)


def _applies(depth: int, req: _Request) -> Q:
    """On provision rows (the resource at `depth`): the provision, with its path, applies."""
    when = Q(start__lte=req.now, end__gt=req.now)  # open ends are stored as the calendar's ends
    governs = Q(reads=True) if req.reading else Q(writes=True)
    dated = Q(dated=False) | _in_data_period(depth + 1, req)
    # Every group of criteria (one kind at one level) has a value met: as many groups met as it has.
    met = (C.objects.filter(node=OuterRef("pk")).filter(_satisfied(depth + 1, req)).order_by()
           .values("node").annotate(n=Count("group", distinct=True)).values("n"))
    return when & governs & dated & Q(groups=Coalesce(Subquery(met), 0))


def _deciding(deny: bool, req: _Request, of_patient: Q) -> Exists:
    """Some provision (of the patient `of_patient` selects, one below the resource) decides
    `deny`: it applies and no exception of its own applies. Written as "applying provisions
    EXCEPT the parents of applying provisions" so exceptions sit beside their parents in
    the SQL, not a level below (SQLite parses only so many nested subqueries)."""
    applying = ConsentNode.objects.filter(of_patient).filter(_applies(1, req))
    deciders = applying.filter(deny=deny)
    if deny and req.break_glass:
        deciders = deciders.filter(names_etreat=True)
    overridden = applying.filter(parent__isnull=False).values_list("parent_id", flat=True)
    return Exists(deciders.values_list("id", flat=True).difference(overridden))


def _patients_links(req: _Request, depth: int) -> QuerySet:
    """The outer resource's references to the patients whose data it is."""
    links = ReferenceIndex.objects.filter(resource=_outer("pk", depth), target_type="Patient")
    if req.resource_type is not None:
        return links.filter(code__in=_patient_links()[req.resource_type])
    return links.filter(_by_type(_patient_links()))


def _decided(deny: bool, req: _Request) -> Q:
    """A provision of a patient whose data the outer resource is decides `deny` for it."""
    as_patient = Q(_deciding(deny, req, Q(patient_id=OuterRef("logical_id"))))
    if req.resource_type == "Patient":
        return as_patient
    linked = Q(_deciding(deny, req, Q(patient_id__in=_patients_links(req, 2).values("target_id"))))
    if req.resource_type is not None:
        return linked
    return (Q(resource_type="Patient") & as_patient) | linked


def _patientless(req: _Request) -> Q | None:
    """The outer resource is no patient's data (None: it always is one's, a Patient)."""
    if req.resource_type == "Patient":
        return None
    linked = Exists(_patients_links(req, 1))
    if req.resource_type is not None:
        return ~linked
    return ~Q(resource_type="Patient") & ~linked


def governed(resource_type: str | None) -> bool:
    """Whether Consents can decide about resources of this type (None: of any type)."""
    return resource_type is None or resource_type == "Patient" or resource_type in _patient_links()


def condition(access: Access, resource_type: str | None, interaction: str) -> Q | None:
    """Rows (of `resource_type`, or of any type when None) consent lets this access reach for
    `interaction`; None when consent narrows nothing."""
    default_deny = settings.FHIR_CONSENT_DEFAULT == "deny" and not access.break_glass
    if not governed(resource_type) or not (access.consents or default_deny):
        return None
    actors = access.memo.get("consent actors")
    if actors is None:
        actors = access.memo["consent actors"] = (*access.actors, *_organizations(access))
    req = _Request(actors=actors, purpose=access.purpose_of_use, break_glass=access.break_glass,
                   reading=interaction not in WRITES, now=timezone.now(), resource_type=resource_type)
    allowed = ~_decided(True, req)
    if default_deny:
        permitted = _decided(False, req)
        patientless = _patientless(req)
        allowed &= permitted if patientless is None else permitted | patientless
    return allowed
