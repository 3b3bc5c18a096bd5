"""The access context as SQL: which rows of fhir_api_resource a token may reach.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- smart_auth.access
describes what a token allows (rules per type and interaction); this module turns a rule
into a condition on resource rows, so the narrowing is inside every query the search engine
builds: the page, the count, chains, `_has`, includes, history, `$everything`. A resource
outside the rules is never fetched, so it cannot leak through results or totals.

- a patient compartment (`patient/` scopes, a Patient user's `user/` scopes) is the R4
  Patient CompartmentDefinition: the Patient itself, and resources whose compartment
  parameters refer to it (the reference index already holds those links);
- a v2 query restriction (`patient/Observation.rs?category=...`) is the same search the
  client could have written, parsed by the search engine.

The access of the request in hand is read from `smart_auth.access.current`, set by the REST
floor once the token is checked; None there means authentication is off.
"""
from __future__ import annotations

from functools import reduce
from operator import and_, or_

from django.db.models import Q

from fhir_api.store.models import Resource
from fhir_api.store.structure import resource_types
from fhir_search import compartments
from fhir_search import consent as consent_sql
from fhir_search.params import Env
from fhir_search.query.build import clause_condition
from fhir_search.query.parse import parse_request
from smart_auth.access import Access, Rule, current

NOTHING = Q(pk__in=[])


def visible_for(interaction: str, access: Access | None = None):
    """The `Env.visible` function of a search: each type's rows the access reaches."""
    access = access if access is not None else current.get()
    if access is None:
        return None
    return lambda resource_type: type_condition(access, resource_type, interaction)


def _any(conditions: list[Q]) -> Q:
    return reduce(or_, conditions) if conditions else NOTHING


def compartment_condition(patient_id: str, resource_type: str) -> Q:
    """Rows of `resource_type` in Patient `patient_id`'s compartment."""
    members = compartments.definitions().get("Patient", {})
    linked = compartments.condition("Patient", patient_id, resource_type) if resource_type in members else NOTHING
    if resource_type == "Patient":
        return Q(resource_type="Patient", logical_id=patient_id) | linked
    return linked


def _query_condition(resource_type: str | None, query: tuple[tuple[str, str], ...]) -> Q:
    """The rows matching a scope's query restriction (evaluated without access narrowing:
    the query is the server's grant, not the client's search)."""
    types = (resource_type,) if resource_type else None
    env = Env()  # no `visible`: the restriction's own chains are not narrowed again
    request = parse_request(types, list(query), strict=True, env=env)
    conditions = [clause_condition(clause, env) for clause in request.clauses]
    return reduce(and_, conditions) if conditions else Q()


def rule_condition(rule: Rule, resource_type: str) -> Q:
    condition = Q()
    if rule.compartment is not None:
        condition &= compartment_condition(rule.compartment, resource_type)
    if rule.query:
        condition &= _query_condition(resource_type, rule.query)
    return condition


def type_condition(access: Access, resource_type: str, interaction: str) -> Q | None:
    """Rows of one type the access reaches (None: all of them, NOTHING: none)."""
    cache = access.memo
    key = ("sql", resource_type, interaction)
    if key in cache:
        return cache[key]
    rules = access.rules(resource_type, interaction)
    if not rules:
        found: Q | None = NOTHING
    elif any(rule.unrestricted for rule in rules):
        found = None
    else:
        found = _any([rule_condition(rule, resource_type) for rule in rules])
    if found is not NOTHING:  # consent narrows what the scopes allow, never widens it
        consent = consent_sql.condition(access, resource_type, interaction)
        if consent is not None:
            found = consent if found is None else found & consent
    cache[key] = found
    return found


def visible_one(access: Access, resource_type: str, logical_id: str, interaction: str) -> bool | None:
    """Whether the current resource `resource_type/logical_id` is within the access's reach for
    `interaction` (False also when it does not exist); None when every resource of the type is."""
    if access.unrestricted(resource_type, interaction):  # consent is all that can narrow it
        return consent_sql.allows_one(access, resource_type, logical_id, interaction)
    found = type_condition(access, resource_type, interaction)
    if found is None:
        return None
    return Resource.objects.filter(resource_type=resource_type, logical_id=logical_id, deleted=False).filter(
        found).exists()


def condition(types: tuple[str, ...] | None, interaction: str, access: Access | None = None) -> Q | None:
    """Rows of these types (None: any type) the current access reaches; None: no narrowing."""
    access = access if access is not None else current.get()
    if access is None:
        return None
    if types is not None and len(types) == 1:
        return type_condition(access, types[0], interaction)
    if types is None and access.unrestricted("*", interaction):
        # a `*` scope reaching everything: no per-type OR of every resource type
        return consent_sql.condition(access, None, interaction)
    candidates = types if types is not None else _scoped_types(access, interaction)
    parts = []
    every = True
    for resource_type in candidates:
        q = type_condition(access, resource_type, interaction)
        if q is None:
            parts.append(Q(resource_type=resource_type))
        else:
            every = False
            parts.append(Q(resource_type=resource_type) & q)
    if every and types is not None:
        return None
    return _any(parts)


def _scoped_types(access: Access, interaction: str) -> tuple[str, ...]:
    """The types the scopes reach for `interaction` (all types for a `*` scope)."""
    named = {s.resource_type for s in access.scopes if interaction in s.interactions}
    if "*" in named:
        return tuple(sorted(resource_types()))
    return tuple(sorted(named))
