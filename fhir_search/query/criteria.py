"""What a search parameter name means: a plain parameter, a chain, or a reverse chain.

https://hl7.org/fhir/R4/search.html#chaining and #has -- `name:exact`, `subject:Patient.name`,
`patient.general-practitioner.name` (chains of any depth), `_has:Observation:patient:code`
(reverse chains, nested too). Names resolve against the registry per resource type.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from fhir_api.store.errors import BadRequest, TooCostly
from fhir_api.store.structure import resource_types
from fhir_search.params import ParamType, Unsupported, param_type
from fhir_search.params.base import NOT_SUPPORTED_MODIFIERS
from fhir_search.params.special import SPECIAL, NotSupported
from fhir_search.registry import SearchParam, registry


class UnknownParameter(Exception):
    """A name this server does not know for the resource type (lenient mode ignores it)."""


@dataclass(frozen=True)
class Plain:
    param: SearchParam
    ptype: ParamType
    modifier: str | None


@dataclass(frozen=True)
class Chain:
    """`ref.inner`: resources whose reference `param` points at a resource matching `inner`."""

    param: SearchParam
    targets: tuple[tuple[str, Criterion], ...]  # (target type, criterion on that type)


@dataclass(frozen=True)
class Has:
    """`_has:source:param:inner`: resources that a `source` resource matching `inner` points at."""

    source: str
    param: SearchParam
    inner: Criterion


Criterion = Plain | Chain | Has


def lookup(resource_type: str | None, code: str) -> SearchParam | None:
    """A parameter of a type; with no type (system search) only the common ones."""
    return registry().get(resource_type or "", code)


def check_depth(name: str) -> None:
    """Chains and `_has` multiply the SQL (a chain without a type tries every target type):
    bounded by settings, answered with 400 too-costly beyond."""
    has_depth = name.count("_has:")
    if has_depth > settings.FHIR_SEARCH_MAX_HAS_DEPTH:
        raise TooCostly(f"'{name[:100]}' nests _has {has_depth} deep; this server's limit is "
                        f"{settings.FHIR_SEARCH_MAX_HAS_DEPTH} (FHIR_SEARCH_MAX_HAS_DEPTH)")
    # Every "." outside a _has prefix is one link of a chain (_has inner names chain too).
    links = max((part.count(".") for part in name.split("_has:")), default=0)
    if links > settings.FHIR_SEARCH_MAX_CHAIN:
        raise TooCostly(f"'{name[:100]}' chains {links} references; this server's limit is "
                        f"{settings.FHIR_SEARCH_MAX_CHAIN} (FHIR_SEARCH_MAX_CHAIN)")


def resolve(resource_type: str | None, name: str) -> Criterion:
    """The criterion a parameter name stands for. Raises UnknownParameter / Unsupported / BadRequest."""
    check_depth(name)
    if name.startswith("_has:"):
        return _has(resource_type, name)
    head, dot, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    if isinstance(SPECIAL.get(code), NotSupported):
        raise Unsupported(f"The search parameter {code} is not supported by this server yet")
    param = lookup(resource_type, code)
    if param is None:
        where = f" for {resource_type}" if resource_type else ""
        raise UnknownParameter(f"Unknown search parameter '{code}'{where}")
    if dot:
        return _chain(param, modifier, rest)
    ptype = param_type(param)
    if ptype is None:
        raise UnknownParameter(f"Search parameter '{code}' has type {param.type}, which cannot be searched")
    if modifier in NOT_SUPPORTED_MODIFIERS and modifier not in ptype.modifiers:
        raise Unsupported(f"The modifier :{modifier} is not supported by this server yet")
    if modifier == "not" and param.type != "token":
        raise UnknownParameter(f"The modifier :not applies to token parameters, not to '{code}'")
    if not ptype.accepts(modifier or None, param):
        raise UnknownParameter(f"Unknown modifier :{modifier} for search parameter '{code}'")
    return Plain(param, ptype, modifier or None)


def _chain(param: SearchParam, modifier: str, rest: str) -> Chain:
    if param.type != "reference":
        raise UnknownParameter(f"'{param.code}' is not a reference parameter and cannot be chained")
    if modifier:
        if modifier not in resource_types() or (param.targets and modifier not in param.targets):
            raise UnknownParameter(f"'{param.code}' cannot refer to a {modifier}")
        candidates: tuple[str, ...] = (modifier,)
    else:
        candidates = param.targets or tuple(sorted(resource_types()))
    targets = []
    for target in candidates:
        try:
            targets.append((target, resolve(target, rest)))
        except UnknownParameter:
            continue  # the chained name may exist for some target types only
    if not targets:
        raise UnknownParameter(f"No target of '{param.code}' has a search parameter '{rest}'")
    return Chain(param, tuple(targets))


def _has(resource_type: str | None, name: str) -> Has:
    parts = name.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise BadRequest(f"'{name}' is not _has:[type]:[reference parameter]:[parameter]")
    _, source, code, inner = parts
    if source not in resource_types():
        raise UnknownParameter(f"_has: unknown resource type '{source}'")
    param = lookup(source, code)
    if param is None or param.type != "reference":
        raise UnknownParameter(f"_has: '{code}' is not a reference parameter of {source}")
    if resource_type and param.targets and resource_type not in param.targets:
        raise UnknownParameter(f"_has: {source}.{code} never refers to a {resource_type}")
    return Has(source, param, resolve(source, inner))
