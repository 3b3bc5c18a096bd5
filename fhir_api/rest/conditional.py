"""Conditional create, update, delete and patch (https://hl7.org/fhir/R4/http.html#ccreate).

Each decides what to do from how many resources match the search criteria (0, 1, many).
Matching and writing happen in one transaction that first takes a lock named after the
criteria, so two clients racing to conditionally create the same patient serialise: the
second one sees the first one's resource and does not create a duplicate.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import connection, transaction

from fhir_api.store import repository
from fhir_api.store.errors import BadRequest, NotFound, PreconditionFailed


def parse_criteria(query: str) -> list[tuple[str, str]]:
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    params = [(k, v) for k, v in params if k not in ("_format", "_pretty")]
    if not params:
        raise BadRequest("A conditional interaction needs search criteria", code="required")
    return params


def lock_criteria(resource_type: str, params: list[tuple[str, str]]) -> None:
    """Serialise writers that match on the same criteria until their transaction ends.

    PostgreSQL: a transaction-scoped advisory lock keyed by the criteria. SQLite takes
    the database write lock when the transaction begins (IMMEDIATE mode), which already
    serialises every writer.
    """
    if connection.vendor != "postgresql":
        return
    text = resource_type + "?" + "&".join(f"{k}={v}" for k, v in sorted(params))
    key = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def matches(resource_type: str, params: list[tuple[str, str]], limit: int = 2, interaction: str = "s") -> list[str]:
    """Ids matching the criteria among what the current token reaches for `interaction`:
    a conditional update, patch or delete matches only what the token may change, so what
    is out of its reach is neither changed nor revealed (it matches nothing)."""
    from fhir_search.service import match

    return match(resource_type, params, limit=limit, interaction=interaction)


def create(resource_type: str, content: dict[str, Any], criteria: str) -> repository.Written | repository.Stored:
    """If-None-Exist: create when nothing matches, return the match when one does."""
    params = parse_criteria(criteria)
    with transaction.atomic():
        lock_criteria(resource_type, params)
        found = matches(resource_type, params)
        if len(found) > 1:
            raise PreconditionFailed(f"If-None-Exist matched {len(found)} {resource_type} resources")
        if found:
            return repository.read(resource_type, found[0])
        return repository.create(resource_type, content)


def update(
    resource_type: str, content: dict[str, Any], criteria: str, *, if_match: int | None = None
) -> repository.Written:
    """PUT [type]?criteria: create if none match, update the one that matches, 412 if many."""
    params = parse_criteria(criteria)
    with transaction.atomic():
        lock_criteria(resource_type, params)
        found = matches(resource_type, params, interaction="u")
        if len(found) > 1:
            raise PreconditionFailed(f"The criteria matched {len(found)} {resource_type} resources")
        body_id = content.get("id") if isinstance(content, dict) else None
        if found:
            if body_id is not None and body_id != found[0]:
                raise BadRequest(f"The body id {body_id!r} differs from the matched resource {found[0]!r}")
            return repository.update(resource_type, found[0], {**content, "id": found[0]}, if_match=if_match)
        if body_id is not None:
            return repository.update(resource_type, body_id, content, if_match=if_match)
        return repository.create(resource_type, content)


def delete(resource_type: str, criteria: str, *, allow_multiple: bool = False) -> list[repository.Written]:
    """DELETE [type]?criteria: one match is deleted; several only when allowed (Prefer or settings)."""
    params = parse_criteria(criteria)
    limit = settings.FHIR_CONDITIONAL_DELETE_MAX if allow_multiple else 2
    with transaction.atomic():
        lock_criteria(resource_type, params)
        found = matches(resource_type, params, limit=limit + 1, interaction="d")
        if len(found) > 1 and not allow_multiple:
            raise PreconditionFailed(
                f"The criteria matched {len(found)} {resource_type} resources; "
                "send 'Prefer: handling=multiple-delete' (or set FHIR_CONDITIONAL_DELETE_MULTIPLE) to delete them all"
            )
        if len(found) > limit:
            raise PreconditionFailed(f"The criteria matched more than {limit} resources (FHIR_CONDITIONAL_DELETE_MAX)")
        results = [repository.delete(resource_type, logical_id) for logical_id in found]
        return [r for r in results if r is not None]


def patch(
    resource_type: str,
    criteria: str,
    apply: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    if_match: int | None = None,
) -> repository.Written:
    """PATCH [type]?criteria: patch the single match."""
    params = parse_criteria(criteria)
    with transaction.atomic():
        lock_criteria(resource_type, params)
        found = matches(resource_type, params, interaction="u")
        if not found:
            raise NotFound(f"No {resource_type} matches the criteria")
        if len(found) > 1:
            raise PreconditionFailed(f"The criteria matched {len(found)} {resource_type} resources")
        return repository.patch(resource_type, found[0], apply, if_match=if_match)
