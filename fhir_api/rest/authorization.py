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
        with repository.guarded(_write_guard(access)):
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
    if not reachable(request, resource_type, logical_id, interaction):
        raise NotFound(f"{resource_type}/{logical_id} is not known")


def reachable(request: HttpRequest, resource_type: str, logical_id: str, interaction: str) -> bool:
    access = getattr(request, "access", None)
    if access is None:
        return True
    condition = access_sql.type_condition(access, resource_type, interaction)
    if condition is None:
        return True
    rows = Resource.objects.filter(resource_type=resource_type, logical_id=logical_id, deleted=False)
    if rows.filter(condition).exists():  # the usual case: one query
        return True
    # A resource that does not exist (or is deleted) is not "out of reach": let the
    # interaction answer as it would (404/410, update-as-create), the guard checks writes.
    return not rows.exists()


def require_writable(request: HttpRequest, resource_type: str, logical_id: str, interaction: str) -> None:
    """Update, patch or delete of an existing resource: it must be within the token's reach
    for that interaction (403 otherwise; the write guard then checks the new version)."""
    require(request, resource_type, interaction)
    if not reachable(request, resource_type, logical_id, interaction):
        raise Forbidden(f"{resource_type}/{logical_id} is outside what the access token may change")


def visible_condition(request: HttpRequest, types: tuple[str, ...] | None, interaction: str):
    """A condition on current rows for history/$everything (None: no narrowing)."""
    access = getattr(request, "access", None)
    if access is None:
        return None
    return access_sql.condition(types, interaction, access)


def _write_guard(access: Access):
    def guard(rows: list[tuple[Resource, bool]]) -> None:
        for row, created in rows:
            interaction = "c" if created else "u"
            access.require(row.resource_type, interaction)
            condition = access_sql.type_condition(access, row.resource_type, interaction)
            if condition is None:
                continue
            if not Resource.objects.filter(pk=row.pk).filter(condition).exists():
                raise Forbidden(
                    f"{row.resource_type}/{row.logical_id} would be outside what the access token may "
                    f"{'create' if created else 'update'} (its patient compartment or scope query)"
                )

    return guard
