"""Every FHIR request checked against its token (SMART App Launch, enforcement side).

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- with
FHIR_AUTH_REQUIRED on, each request carries `Authorization: Bearer <token>`; a missing,
unknown, expired or revoked token is 401 with `WWW-Authenticate: Bearer`, a token sent in
the query string or a form body is refused (RFC 6750 allows it; SMART servers should not),
and a valid token without the scope for the interaction is 403. What the token reaches
inside a permitted type (a patient's compartment, a v2 query) is narrowed in SQL by
fhir_search.access: a resource outside it is "not found", whether it exists or not.

Interactions map onto SMART v2 permissions: read, vread and history `r`; search `s`;
create `c`; update and patch `u`; delete `d`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest

from fhir_api.store import repository
from fhir_api.store.errors import Forbidden, NotFound, Unauthorized
from fhir_api.store.models import Resource
from fhir_search import access as access_sql
from fhir_search import consent as consent_sql
from smart_auth.access import REALM, Access, access_for_token, bearer_token, current


def authenticate(request: HttpRequest) -> Access | None:
    """The request's access (None when authentication is off); 401 when it has none."""
    if hasattr(request, "access"):  # a batch entry run through a view: the outer request's
        return request.access
    if not settings.FHIR_AUTH_REQUIRED:
        return None
    if "access_token" in request.GET or _form_has_token(request):
        raise Unauthorized("Send the access token in the Authorization header, not in the URL or body",
                           headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'})
    return access_for_token(bearer_token(request.META.get("HTTP_AUTHORIZATION")))


def _form_has_token(request: HttpRequest) -> bool:
    content_type = request.META.get("CONTENT_TYPE", "")
    if request.method != "POST" or not content_type.startswith("application/x-www-form-urlencoded"):
        return False
    return b"access_token=" in request.body


@contextmanager
def serving(request: HttpRequest, access: Access | None) -> Iterator[None]:
    """Run a request under its access: search narrowing and the write guard."""
    request.access = access
    if access is None:
        yield
        return
    token = current.set(access)
    try:
        with repository.guarded(_WriteGuard(access)):
            yield
    finally:
        current.reset(token)


def require(request: HttpRequest, resource_type: str, interaction: str) -> None:
    access = getattr(request, "access", None)
    if access is not None:
        access.require(resource_type, interaction)


def require_visible(request: HttpRequest, resource_type: str, logical_id: str, interaction: str) -> None:
    """The interaction is allowed on this type and this resource is within reach; a resource out
    of reach is answered as not found (404), exactly as one that does not exist."""
    require(request, resource_type, interaction)
    access = getattr(request, "access", None)
    # Only a current resource can be shown to be within reach (a deleted one has no index
    # rows to test): under a narrowed token a deleted resource answers 404, not 410, so
    # that another patient's deletions are not revealed.
    if access is not None and access_sql.visible_one(access, resource_type, logical_id, interaction) is False:
        raise NotFound(f"{resource_type}/{logical_id} is not known")


def require_writable(request: HttpRequest, resource_type: str, logical_id: str, interaction: str) -> None:
    """An operation that changes an existing resource without writing a version (so the
    store's write guard does not see it): the resource must be within the token's reach for
    that interaction (403 otherwise). A resource that does not exist is left to the operation."""
    require(request, resource_type, interaction)
    access = getattr(request, "access", None)
    condition = None if access is None else access_sql.type_condition(access, resource_type, interaction)
    if condition is None:
        return
    rows = Resource.objects.filter(resource_type=resource_type, logical_id=logical_id, deleted=False)
    if not rows.filter(condition).exists() and rows.exists():
        raise Forbidden(f"{resource_type}/{logical_id} is outside what the access token may change")


def visible_condition(request: HttpRequest, types: tuple[str, ...] | None, interaction: str):
    """A condition on current rows for history/$everything (None: no narrowing)."""
    access = getattr(request, "access", None)
    if access is None:
        return None
    return access_sql.condition(types, interaction, access)


class _WriteGuard:
    """The store's write guard for one token (repository.WriteGuard)."""

    _verbs = {"c": "create", "u": "update", "d": "delete"}

    def __init__(self, access: Access) -> None:
        self.access = access

    def before(self, row: Resource, interaction: str) -> None:
        self._check(row, interaction, "is outside what the access token may")

    def after(self, rows: list[tuple[Resource, bool]]) -> None:
        for row, created in rows:
            self._check(row, "c" if created else "u", "would be outside what the access token may")

    def _check(self, row: Resource, interaction: str, why: str) -> None:
        self.access.require(row.resource_type, interaction)
        condition = access_sql.type_condition(self.access, row.resource_type, interaction)
        if condition is not None and not Resource.objects.filter(pk=row.pk).filter(condition).exists():
            raise Forbidden(f"{row.resource_type}/{row.logical_id} {why} {self._verbs[interaction]} "
                            "(its patient compartment or scope query)")
        if self.access.break_glass:  # allowed: say in its AuditEvent if only thanks to ETREAT
            consent_sql.note_set_aside(self.access, row, interaction)
