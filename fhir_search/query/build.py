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
  Observations matching code=x)`;
- a `_filter` expression (fhir_search.query.filter): its tests become the same EXISTS
  probes, combined with AND, OR and NOT as the expression says.

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

from dataclasses import replace
from functools import reduce
from operator import and_, or_
from typing import Any

from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.lookups import IsNull

from fhir_api.store.errors import BadRequest
from fhir_api.store.models import Resource
from fhir_search.models import ReferenceIndex
from fhir_search.normalize import clip, fold
from fhir_search.params import Env, ParamType, Unsupported
from fhir_search.query import filter as filter_
from fhir_search.query.criteria import Chain, Criterion, Has, Plain
from fhir_search.query.parse import Clause
from fhir_search.registry import SearchParam

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
    if isinstance(criterion, filter_.Filter):
        return 7  # a whole boolean expression: probed per row, never the driver of a paged query
    ptype, code = criterion.ptype, criterion.param.code
    if criterion.modifier in ("missing", "not", "not-in"):
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


def reachable(resource_type: str, env: Env):
    """The current rows of a type that a chain or `_has` may look at: narrowed by the access
    filter the search was handed, so a criterion cannot probe data the token may not see."""
    rows = Resource.objects.filter(resources(resource_type))
    visible = env.visible(resource_type) if env.visible is not None else None
    return rows if visible is None else rows.filter(visible)


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
    if isinstance(criterion, filter_.Filter):
        return _filter(resource_type, criterion.root, env)
    return _has(resource_type, criterion, values, name, env, driver)


def _rows(model, resource_type: str | None, code: str, env: Env | None = None):
    """Index rows of one parameter code (of one resource type, when known)."""
    rows = model.objects.filter(code=code)
    if env is not None and env.fenced:
        # A per-row probe names its resource, so its type too; naming the type again would
        # let a planner without statistics prefer the (code, resource_type, value...) index,
        # reading every row of the value for each probe, to the index that leads with the resource.
        return rows
    # Naming the type lets the planner use the (code, resource_type, value...) indexes.
    return rows.filter(resource_type=resource_type) if resource_type else rows


def probe(rows, present: bool, fenced: bool) -> Q:
    """Whether these rows (correlated with the resource by the caller) exist, as EXISTS (a
    semi-join or anti-join the planner may start from) or, `fenced`, as a scalar subquery:
    PostgreSQL never turns one into a join, so it runs once per candidate row, as a query
    read in the order of an index needs whatever the statistics say (Env.fenced)."""
    if fenced:
        return Q(IsNull(Subquery(rows.values("pk")[:1]), not present))
    return Exists(rows) if present else ~Exists(rows)


def _having(rows, driver: bool, fenced: bool = False) -> Q:
    """Resources that have one of these index rows."""
    if driver:
        return Q(pk__in=rows.values("resource_id"))
    return probe(rows.filter(resource_id=OuterRef("pk")), True, fenced)


def _lacking(rows, fenced: bool = False) -> Q:
    """Resources that have none of these index rows (an anti-join)."""
    return probe(rows.filter(resource_id=OuterRef("pk")), False, fenced)


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
        rows = _rows(ptype.model, resource_type, param.code, env)
        return any_of([_lacking(rows, env.fenced) if flag else _having(rows, driver, env.fenced) for flag in flags])
    try:
        parsed = [ptype.parse(param, v, modifier, env) for v in values]
    except ValueError as exc:
        raise BadRequest(f"Invalid value for search parameter {name}: {exc}") from None
    except Unsupported as exc:
        raise BadRequest(str(exc), code="not-supported") from None
    matching = any_of([ptype.condition(param, p, modifier) for p in parsed])
    if ptype.on_resource:
        return matching
    rows = _rows(ptype.model, resource_type, param.code, env).filter(matching)
    return _lacking(rows, env.fenced) if modifier in ("not", "not-in") else _having(rows, driver, env.fenced)


def _chain(
    resource_type: str | None, criterion: Chain, values: tuple[str, ...], name: str, env: Env, driver: bool
) -> Q:
    targets = []
    inner_env = replace(env, fenced=False)  # the chained resources are a subquery of their own
    for target_type, inner in criterion.targets:
        matching = reachable(target_type, env).filter(criterion_condition(target_type, inner, values, name, inner_env))
        targets.append(Q(target_type=target_type, target_id__in=matching.values("logical_id")))
    rows = _rows(ReferenceIndex, resource_type, criterion.param.code, env).filter(any_of(targets))
    return _having(rows, driver, env.fenced)


def _has(
    resource_type: str | None, criterion: Has, values: tuple[str, ...], name: str, env: Env, driver: bool
) -> Q:
    sources = reachable(criterion.source, env).filter(
        criterion_condition(criterion.source, criterion.inner, values, name, replace(env, fenced=False))
    )
    pointing = ReferenceIndex.objects.filter(
        code=criterion.param.code, resource_type=criterion.source, resource_id__in=sources.values("pk")
    )
    if resource_type is not None and driver:
        return Q(logical_id__in=pointing.filter(target_type=resource_type).values("target_id"))
    target_type = resource_type if resource_type is not None else OuterRef("resource_type")
    return probe(pointing.filter(target_type=target_type, target_id=OuterRef("logical_id")), True, env.fenced)


# -- _filter (https://hl7.org/fhir/R4/search_filter.html) ------------------------------------


def _filter(resource_type: str | None, node: filter_.Node, env: Env) -> Q:
    """The condition of a resolved _filter tree on fhir_api_resource rows."""
    if isinstance(node, filter_.And):
        return reduce(and_, (_filter(resource_type, p, env) for p in node.parts))
    if isinstance(node, filter_.Or):
        return any_of([_filter(resource_type, p, env) for p in node.parts])
    if isinstance(node, filter_.Not):
        return ~_filter(resource_type, node.part, env)
    assert node.criterion is not None, "resolve() the tree first"
    return _filter_comparison(resource_type, node.criterion, node, env)


def _filter_comparison(
    resource_type: str | None, criterion: Criterion, comparison: filter_.Comparison, env: Env
) -> Q:
    if isinstance(criterion, Chain):
        targets = []
        for target_type, inner in criterion.targets:
            # The chained resources are a subquery of their own: their probes may be joins.
            inner_env = replace(env, fenced=False)
            matching = reachable(target_type, env).filter(_filter_comparison(target_type, inner, comparison, inner_env))
            targets.append(Q(target_type=target_type, target_id__in=matching.values("logical_id")))
        rows = _rows(ReferenceIndex, resource_type, criterion.param.code, env).filter(any_of(targets))
        return _having(rows, False, env.fenced)
    assert isinstance(criterion, Plain)
    param, ptype, op = criterion.param, criterion.ptype, comparison.op
    if op == "pr":
        flag = comparison.value.lower()
        if flag not in ("true", "false"):
            raise BadRequest(f"_filter: {comparison.path} pr takes true or false, not {comparison.value!r}")
        present = Q() if ptype.on_resource else _having(_rows(ptype.model, resource_type, param.code, env), False,
                                                        env.fenced)
        return present if flag == "true" else (NOTHING if ptype.on_resource else ~present)
    try:
        matching, none_of = _filter_match(param, ptype, op, comparison.value, env)
    except ValueError as exc:
        raise BadRequest(f"_filter: invalid value for {comparison.path} {op}: {exc}") from None
    except Unsupported as exc:
        raise BadRequest(f"_filter: {exc}", code="not-supported") from None
    if ptype.on_resource:
        return matching
    rows = _rows(ptype.model, resource_type, param.code, env).filter(matching)
    return _lacking(rows, env.fenced) if none_of else _having(rows, False, env.fenced)


def _filter_match(param: SearchParam, ptype: ParamType, op: str, value: str, env: Env) -> tuple[Q, bool]:
    """(condition on the index rows or, for _id/_lastUpdated/_list, on the resource; whether
    the resource must have *no* such row).

    `ne` is "an item in the set has an unequal value" (search_filter.html#ops): a row
    that does not match; `not (x eq y)` is the way to ask for no matching row at all.
    """
    kind = ptype.name

    def parsed(raw: str, modifier: str | None = None) -> Any:
        return ptype.parse(param, raw, modifier, env)

    def plain(raw: str, modifier: str | None = None) -> Q:
        return ptype.condition(param, parsed(raw, modifier), modifier)

    if kind in ("date", "number", "quantity", "_lastUpdated"):
        if op == "po":  # the value's range overlaps the target's
            _, low, high = parsed(value)
            if kind == "_lastUpdated":
                return Q(last_updated__gte=low, last_updated__lt=high), False
            return (Q(low__lt=high) | Q(low__isnull=True)) & (Q(high__gt=low) | Q(high__isnull=True)), False
        return plain(op + value), False  # the operators are the search prefixes
    if kind == "string":
        folded = clip(fold(value))
        lookups = {"eq": "exact", "ne": "exact", "co": "contains", "sw": "startswith", "ew": "endswith",
                   "gt": "gt", "lt": "lt", "ge": "gte", "le": "lte"}
        q = Q(**{f"value__{lookups[op]}": folded})
        return (~q if op == "ne" else q), False
    if kind == "token":
        if op in ("co", "sw", "ew"):
            lookup = {"co": "contains", "sw": "startswith", "ew": "endswith"}[op]
            return Q(**{f"value__{lookup}": value}), False
        modifier = {"ss": "below", "sb": "above", "in": "in", "ni": "in"}.get(op)
        q = plain(value, modifier)
        return (~q if op == "ne" else q), op == "ni"
    if kind == "uri":
        lookups = {"eq": "exact", "ne": "exact", "co": "contains", "sw": "startswith", "ew": "endswith"}
        if op in lookups:
            q = Q(**{f"value__{lookups[op]}": value})
            return (~q if op == "ne" else q), False
        return plain(value, "below" if op == "ss" else "above"), False
    if kind in ("reference", "composite", "_id"):
        q = plain(value)
        return (~q if op == "ne" else q), False
    if kind in ("_text", "_content", "_list"):
        return plain(value), False
    raise Unsupported(f"the operator '{op}' does not apply to a {kind} parameter")
