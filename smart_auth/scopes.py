"""SMART scopes: their grammar, and DOT's scopes backend.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- clinical scopes are
`<level>/<type or *>.<permissions>[?query]`: level `patient`, `user` or `system`; v1
permissions `read`, `write` or `*`, v2 permissions a non-empty subsequence of `cruds` in
that order, optionally narrowed by a search query (v2 only). The other scopes ask for
launch context, identity or a refresh token.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl

from oauth2_provider.scopes import BaseScopes

LEVELS = ("patient", "user", "system")
V1_PERMISSIONS = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
# Interactions a clinical scope can allow, in the order v2 writes them.
INTERACTIONS = "cruds"

CONTEXT_SCOPES = {
    "launch": "Use the context of the EHR launch",
    "launch/patient": "Know which patient is in context",
    "launch/encounter": "Know which encounter is in context",
    "openid": "Know who you are (OpenID Connect)",
    "fhirUser": "Know which FHIR resource you are (Patient, Practitioner, RelatedPerson)",
    "profile": "Know who you are (profile)",
    "offline_access": "Keep access after you sign out",
    "online_access": "Keep access while you are signed in",
}

_CLINICAL = re.compile(r"(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>[^?\s]+)(?:\?(?P<query>\S+))?\Z")
_V2_PERMISSIONS = re.compile(r"c?r?u?d?s?\Z")


class ScopeError(ValueError):
    """A scope string that is not SMART grammar."""


@dataclass(frozen=True)
class ClinicalScope:
    level: str  # patient, user or system
    resource_type: str  # a type or "*"
    interactions: frozenset[str]  # subset of "cruds"
    query: tuple[tuple[str, str], ...] = ()  # v2 query restriction, as search parameters
    text: str = ""

    def covers(self, resource_type: str, interaction: str) -> bool:
        return self.resource_type in ("*", resource_type) and interaction in self.interactions


@lru_cache(maxsize=4096)
def parse_clinical(scope: str) -> ClinicalScope | None:
    """A clinical scope, or None for another kind; raises ScopeError when it is malformed."""
    m = _CLINICAL.match(scope)
    if not m:
        if "/" in scope and scope.split("/", 1)[0] in LEVELS:
            raise ScopeError(f"{scope!r} is not a SMART scope such as patient/Observation.rs")
        return None
    perm, query = m.group("perm"), m.group("query")
    if perm in V1_PERMISSIONS:
        if query:
            raise ScopeError(f"{scope!r}: only v2 scopes (e.g. .rs) take a query")
        interactions = V1_PERMISSIONS[perm]
    elif perm and _V2_PERMISSIONS.match(perm):
        interactions = frozenset(perm)
    else:
        raise ScopeError(f"{scope!r}: permissions are read, write, * or letters of cruds in that order")
    pairs: tuple[tuple[str, str], ...] = ()
    if query:
        pairs = tuple(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
        if not pairs or any(not name for name, _ in pairs):
            raise ScopeError(f"{scope!r}: the query after ? must be name=value pairs")
    return ClinicalScope(m.group("level"), m.group("type"), interactions, pairs, scope)


def check_scope(scope: str) -> None:
    """Raise ScopeError unless `scope` is a scope this server knows."""
    if scope in CONTEXT_SCOPES:
        return
    if parse_clinical(scope) is None:
        raise ScopeError(f"unknown scope {scope!r}")


def is_known(scope: str) -> bool:
    try:
        check_scope(scope)
    except ScopeError:
        return False
    return True


def describe(scope: str) -> str:
    """The scope in plain words, for the authorize screen."""
    if scope in CONTEXT_SCOPES:
        return CONTEXT_SCOPES[scope]
    clinical = parse_clinical(scope)
    if clinical is None:
        return scope
    words = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
    verbs = [words[i] for i in INTERACTIONS if i in clinical.interactions]
    what = "all data" if clinical.resource_type == "*" else f"{clinical.resource_type} resources"
    whose = {"patient": "of the patient in context", "user": "you can access",
             "system": "on this server"}[clinical.level]
    text = f"{', '.join(verbs).capitalize()} {what} {whose}"
    if clinical.query:
        text += " where " + " and ".join(f"{k} is {v}" for k, v in clinical.query)
    return text


def within(scope: str, allowed: list[str]) -> bool:
    """Whether `scope` is no broader than one of the `allowed` scopes (a client's registration)."""
    if scope in allowed:
        return True
    clinical = parse_clinical(scope)
    if clinical is None:
        return False
    for other in allowed:
        try:
            limit = parse_clinical(other)
        except ScopeError:
            continue
        if limit is None or limit.level != clinical.level:
            continue
        if limit.resource_type not in ("*", clinical.resource_type):
            continue
        if not clinical.interactions <= limit.interactions:
            continue
        if limit.query and not set(limit.query) <= set(clinical.query):
            continue  # the registration narrows by a query this scope does not keep
        return True
    return False


class SmartScopes(BaseScopes):
    """DOT's scopes backend. SMART scopes are a grammar, not a list: what can be asked is
    checked by the validator with `check_scope`; this lists the named scopes for screens."""

    def get_all_scopes(self) -> dict[str, str]:
        examples = {s: describe(s) for s in ("patient/*.rs", "user/*.cruds", "system/*.rs")}
        return {**CONTEXT_SCOPES, **examples}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs) -> list[str]:
        if application is not None and getattr(application, "allowed_scopes", ""):
            return application.allowed_scopes.split()
        return list(self.get_all_scopes())

    def get_default_scopes(self, application=None, request=None, *args, **kwargs) -> list[str]:
        return []
