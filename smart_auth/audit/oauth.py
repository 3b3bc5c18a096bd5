"""AuditEvents for the authorization server: codes, tokens, refresh, revocation, introspection,
refusals, sign-in and sign-out (IHE BALP; DICOM "User Authentication").

https://profiles.ihe.net/ITI/BALP/ -- each endpoint view is wrapped by `audited`, which
records one event after the answer is known: what happened follows from the endpoint, the
grant type and the status. The token a grant issued is named by its database id only (the
validator notes it in `issued`); no token, code, secret or assertion is ever recorded, and
OAuth error descriptions are written by this server and carry none.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from contextvars import ContextVar
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse

from smart_auth.audit import balp, trail

# The access token the current token request issued: (id, patient id), set by the validator.
issued: ContextVar[tuple[int, str] | None] = ContextVar("oauth_issued", default=None)

_GRANTS = {"authorization_code": ("token", "token granted"), "client_credentials": ("token", "token granted"),
           "refresh_token": ("refresh", "token refreshed")}


def note_issued(token_id: int, patient: str = "") -> None:
    issued.set((token_id, patient or ""))


def _basic_client(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(value.strip()).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _assertion_client(request: HttpRequest) -> str:
    """The `iss` of a private_key_jwt assertion, read without trusting it (it names who tried)."""
    assertion = request.POST.get("client_assertion", "")
    parts = assertion.split(".")
    if len(parts) != 3:
        return ""
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return ""
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss[:200] if isinstance(iss, str) else ""


def actor_of(request: HttpRequest) -> balp.Actor:
    from smart_auth.grants import person_of

    client_id = (request.POST.get("client_id") or request.GET.get("client_id") or _basic_client(request)
                 or _assertion_client(request))
    user = getattr(request, "user", None)
    fhir_user = username = ""
    if user is not None and user.is_authenticated:
        fhir_user = person_of(user).fhir_user or ""
        username = "" if fhir_user else user.get_username()
    return balp.Actor(address=request.META.get("REMOTE_ADDR", ""), client_id=client_id[:200], user=fhir_user,
                      username=username, server=_server(request))


def _server(request: HttpRequest) -> str:
    try:
        return request.build_absolute_uri("/auth")
    except Exception:  # noqa: BLE001 -- a request without a host (force_login) still leaves its record
        return ""


def _error_text(response: HttpResponse) -> str:
    """The OAuth error of a JSON answer ("invalid_grant: the code was already used")."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, AttributeError):
        return ""
    if not isinstance(body, dict):
        return ""
    return ": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k))[:500]


def _token_entities(found: tuple[int, str] | None) -> tuple[list[dict[str, Any]], str | None]:
    if found is None:
        return [], None
    token_id, patient = found
    entity = {"what": {"identifier": {"system": "urn:fhir-server:token", "value": str(token_id)}},
              "type": {"system": balp.ENTITY_TYPE, "code": "2", "display": "System Object"},
              "description": "access token (named by its database id, never its value)"}
    return [entity], patient or None


def _describe(endpoint: str, request: HttpRequest, response: HttpResponse) -> tuple[str, str, int, str] | None:
    """(code, display, status, description) of what the endpoint did; None: nothing to record."""
    status = response.status_code
    if endpoint == "token":
        code, display = _GRANTS.get(request.POST.get("grant_type", ""), ("token", "token request"))
        return code, display if status < 400 else f"{display} refused", status, _error_text(response)
    if endpoint == "revoke":
        return "revoke", "token revoked" if status < 400 else "revocation refused", status, _error_text(response)
    if endpoint == "introspect":
        return "introspect", "token introspected", status, _error_text(response)
    if endpoint == "authorize":
        location = response.get("Location", "")
        if status == 200 or (status in (301, 302, 303) and "/auth/login" in location):
            return None  # the consent screen or the sign-in page: nothing decided yet
        if status in (301, 302, 303) and "code=" in location and "error=" not in location:
            return "authorize", "authorization code issued", 200, ""
        return "denied", "authorization denied", 403 if status < 400 else status, _denial(location)
    return None


def _denial(location: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(location).query)
    return ": ".join(query[k][0] for k in ("error", "error_description") if query.get(k))[:500]


def audited(endpoint: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Wrap an endpoint view so each call leaves its AuditEvent."""

    def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            reset = issued.set(None)
            try:
                response = view(request, *args, **kwargs)
                found = issued.get()
            finally:
                issued.reset(reset)
            what = _describe(endpoint, request, response)
            if what is not None:
                code, display, status, description = what
                entities, patient = _token_entities(found if status < 400 else None)
                event = balp.security_event(actor_of(request), code, display, status=status,
                                            description=description, entities=entities)
                if patient:
                    event.setdefault("entity", []).insert(0, balp.patient_entity(patient))
                trail.record(event)
            return response

        return run

    return wrap


# -- sign-in and sign-out (django.contrib.auth signals) ------------------------------------


def signed_in(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    if request is not None:
        trail.record(balp.security_event(actor_of(request), "110122", "Login", login=True))


def signed_out(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    if request is not None and user is not None:
        request.user = user  # still the person signing out, for the record
        trail.record(balp.security_event(actor_of(request), "110123", "Logout", login=True))


def sign_in_failed(sender: Any, credentials: dict[str, Any] | None = None, request: HttpRequest | None = None,
                   **kwargs: Any) -> None:
    """A failed sign-in: who tried (the user name typed, never the password) and from where."""
    if request is None:
        return
    tried = str((credentials or {}).get("username", ""))[:150]
    actor = actor_of(request)
    actor = balp.Actor(address=actor.address, client_id=actor.client_id, username=tried, server=actor.server)
    trail.record(balp.security_event(actor, "110122", "Login", status=401, description="sign-in failed",
                                     login=True))
