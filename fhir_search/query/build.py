"""Search criteria as SQL conditions on fhir_api_resource (https://hl7.org/fhir/R4/search.html).

Every criterion becomes a subquery over one index table, so a whole search is one SELECT
over fhir_api_resource whatever the number of parameters:

- a plain parameter: `id IN (resource ids of index rows of that code matching any of the
  ORed values)`; `:missing=false` tests for any row of the code;
- negations (`:not`, `:missing=true`): NOT EXISTS of the same rows, correlated with the
  resource (PostgreSQL plans it as an anti-join);
- a chain `subject:Patient.name=x`: `id IN (resources whose reference rows point at one
  of the Patients matching name=x)`, nested to any depth;
- `_has:Observation:patient:code=x`: `logical_id IN (targets of the reference rows of
  Observations matching code=x)`.

Which form a positive criterion takes matters to SQLite, which has no cost-based choice:
it materialises every `IN` list in full, and evaluates a correlated EXISTS once per
candidate row (stopping early under a LIMIT). So the one clause most likely to be
selective (a reference to one resource, an identifier, an id...) is the *driver*, written
as an uncorrelated `IN` that starts from the index table's (code, resource_type, value)
index; every other clause is a correlated EXISTS probe through the resource_id index.
When no clause looks selective there is no driver and the page is read in id order with
probes, stopping at the page size. PostgreSQL plans both forms as semi-joins and picks
its own order, so the choice is neutral there. Built with the ORM (Subquery, Exists,
OuterRef), so it runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

from functools import reduce
from operator import or_

from django.db.models import Exists, OuterRef, Q

from fhir_api.errors import BadRequest
from fhir_api.models import Resource
from fhir_search.models import ReferenceIndex
from fhir_search.params import Env, Unsupported
from fhir_search.query.criteria import Chain, Criterion, Has, Plain
from fhir_search.query.parse import Clause

NOTHING = Q(pk__in=[])


def any_of(conditions: list[Q]) -> Q:
    return reduce(or_, conditions) if conditions else NOTHING


# Lower is more selective; a clause scoring at most DRIVER_MAX may drive the query.
DRIVER_MAX = 3


def selectivity(criterion: Criterion) -> int:
    """A rough guess of how few resources a criterion matches (no statistics needed)."""
    if isinstance(criterion, Chain):
        return 3
    if isinstance(criterion, Has):
        return 4
    ptype, code = criterion.ptype, criterion.param.code
    if criterion.modifier in ("missing", "not"):
        return 9  # negations and presence tests are never the driver
    if ptype.on_resource:
        return 0 if code == "_id" else 6
    kind = criterion.param.type
    if kind == "reference" or (kind == "token" and "identifier" in code) or kind == "uri":
        return 1
    if kind == "string":
        return 3 if criterion.modifier != "contains" else 7
    if kind == "composite":
        return 4
    return 6  # plain tokens (status, category, gender), dates, numbers, quantities


def driver_of(clauses: list[Clause], every_row: bool = False) -> int | None:
    """The index of the clause that drives the query, if one looks selective enough.

    `every_row`: the query reads every match (a count, a sort), so no LIMIT stops a scan
    early and even a loose clause is better materialised once than probed per row.
    """
    scored = [(max(selectivity(c) for _, c in clause.criteria), i) for i, clause in enumerate(clauses)]
    scored = [(score, i) for score, i in scored if score < 9]
    if not scored:
        return None
    score, index = min(scored)
    return index if score <= DRIVER_MAX or every_row else None


def clause_condition(clause: Clause, env: Env, driver: bool = False) -> Q:
    """The condition of one clause: the criterion of each resource type it applies to."""
    parts = []
    for resource_type, criterion in clause.criteria:
        q = criterion_condition(resource_type, criterion, clause.values, clause.name, env, driver)
        if resource_type is not None and len(clause.criteria) > 1:
            q = Q(resource_type=resource_type) & q
        parts.append(q)
    return any_of(parts)


def resources(resource_type: str) -> Q:
    return Q(resource_type=resource_type, deleted=False)


def criterion_condition(
    resource_type: str | None, criterion: Criterion, values: tuple[str, ...], name: str, env: Env,
    driver: bool = True,
) -> Q:
    """A condition on fhir_api_resource rows (of `resource_type`, or any type when None).

    `driver`: written as an uncorrelated IN (the query starts there) or, when False, as a
    correlated EXISTS probe.
    """
    if isinstance(criterion, Plain):
        return _plain(resource_type, criterion, values, name, env, driver)
    if isinstance(criterion, Chain):
        return _chain(resource_type, criterion, values, name, env, driver)
    return _has(resource_type, criterion, values, name, env, driver)


def _rows(model, resource_type: str | None, code: str):
    """Index rows of one parameter code (of one resource type, when known)."""
    rows = model.objects.filter(code=code)
    # Naming the type lets the planner use the (code, resource_type, value...) indexes.
    return rows.filter(resource_type=resource_type) if resource_type else rows


def _having(rows, driver: bool) -> Q:
    """Resources that have one of these index rows."""
    if driver:
        return Q(pk__in=rows.values("resource_id"))
    return Exists(rows.filter(resource_id=OuterRef("pk")))


def _lacking(rows) -> Q:
    """Resources that have none of these index rows (an anti-join)."""
    return ~Exists(rows.filter(resource_id=OuterRef("pk")))


def _missing_flags(values: tuple[str, ...], name: str) -> set[bool]:
    flags = set()
    for v in values:
        if v not in ("true", "false"):
            raise BadRequest(f"{name}={v!r}: :missing takes true or false")
        flags.add(v == "true")
    return flags


def _plain(
    resource_type: str | None, criterion: Plain, values: tuple[str, ...], name: str, env: Env, driver: bool
) -> Q:
    param, ptype, modifier = criterion.param, criterion.ptype, criterion.modifier
    if modifier == "missing":
        flags = _missing_flags(values, name)
        if ptype.on_resource:  # _id and _lastUpdated are never missing
            return Q() if False in flags else NOTHING
        rows = _rows(ptype.model, resource_type, param.code)
        return any_of([_lacking(rows) if flag else _having(rows, driver) for flag in flags])
    try:
        parsed = [ptype.parse(param, v, modifier, env) for v in values]
    except ValueError as exc:
        raise BadRequest(f"Invalid value for search parameter {name}: {exc}") from None
    except Unsupported as exc:
        raise BadRequest(str(exc), code="not-supported") from None
    matching = any_of([ptype.condition(param, p, modifier) for p in parsed])
    if ptype.on_resource:
        return matching
    rows = _rows(ptype.model, resource_type, param.code).filter(matching)
    return _lacking(rows) if modifier == "not" else _having(rows, driver)


def _chain(
    resource_type: str | None, criterion: Chain, values: tuple[str, ...], name: str, env: Env, driver: bool
) -> Q:
    targets = []
    for target_type, inner in criterion.targets:
        matching = Resource.objects.filter(resources(target_type)).filter(
            criterion_condition(target_type, inner, values, name, env)
        )
        targets.append(Q(target_type=target_type, target_id__in=matching.values("logical_id")))
    return _having(_rows(ReferenceIndex, resource_type, criterion.param.code).filter(any_of(targets)), driver)


def _has(
    resource_type: str | None, criterion: Has, values: tuple[str, ...], name: str, env: Env, driver: bool
) -> Q:
    sources = Resource.objects.filter(resources(criterion.source)).filter(
        criterion_condition(criterion.source, criterion.inner, values, name, env)
    )
    pointing = ReferenceIndex.objects.filter(
        code=criterion.param.code, resource_type=criterion.source, resource_id__in=sources.values("pk")
    )
    if resource_type is not None and driver:
        return Q(logical_id__in=pointing.filter(target_type=resource_type).values("target_id"))
    target_type = resource_type if resource_type is not None else OuterRef("resource_type")
    return Exists(pointing.filter(target_type=target_type, target_id=OuterRef("logical_id")))
