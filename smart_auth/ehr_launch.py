"""POST /auth/launch: the EHR side asks for a launch value for a patient (and an encounter).

https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch -- the caller
is the EHR, never an app: a signed-in staff member (session, with Django's CSRF check), or
a system that holds a token allowing it to read Patients on this server (a `system/`
scope such as `system/Patient.r` or `system/*.rs`, or a staff member's `user/` scope).
The body is JSON or a form: `patient`, optional `encounter` and `minutes`. The answer is
JSON, never cached: {"launch", "patient", ["encounter"], "expires"}.
"""
from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from fhir_api.store.errors import FhirError
from smart_auth.access import REALM, Access, access_for_token, bearer_token
from smart_auth.launches import DEFAULT_MINUTES, LaunchError, create_launch


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check for the session path, answering the reason instead of a page
    (the view is csrf_exempt because token callers send no cookie and need none)."""

    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _may_launch_with_token(access: Access) -> bool:
    if any(s.level == "system" and s.covers("Patient", "r") for s in access.scopes):
        return True
    if access.user_id is None or not access.permits("Patient", "r"):
        return False
    return get_user_model()._default_manager.filter(pk=access.user_id, is_staff=True, is_active=True).exists()


def _caller(request: HttpRequest) -> AbstractBaseUser | None:
    """The user the launch is made for (None for a system); _Refused when the caller may not."""
    header = request.headers.get("Authorization")
    if header is not None:
        try:
            access = access_for_token(bearer_token(header))
        except FhirError as exc:
            raise _Refused(401, "invalid_token", exc.diagnostics,
                           exc.headers or {"WWW-Authenticate": REALM}) from None
        if not _may_launch_with_token(access):
            raise _Refused(403, "insufficient_scope",
                           "The token does not allow reading Patients on this server (e.g. system/Patient.r)",
                           {"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'})
        if access.user_id is None:
            return None
        return get_user_model()._default_manager.filter(pk=access.user_id).first()
    user = request.user
    if not user.is_authenticated:
        raise _Refused(401, "login_required", "Sign in as staff or send Authorization: Bearer <token>",
                       {"WWW-Authenticate": REALM})
    if not (user.is_staff and user.is_active):
        raise _Refused(403, "access_denied", "Only staff may make EHR launches")
    reason = _CsrfCheck(lambda r: None).process_view(request, None, (), {})
    if reason:
        raise _Refused(403, "csrf_failed", f"CSRF check failed: {reason}")
    return user


def _params(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise _Refused(400, "invalid_request", "The body is not JSON") from None
        if not isinstance(body, dict):
            raise _Refused(400, "invalid_request", "The body must be a JSON object")
        return body
    return request.POST.dict()


def _minutes(raw: Any) -> int:
    if raw in (None, ""):
        return DEFAULT_MINUTES
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _Refused(400, "invalid_request", "minutes must be a whole number") from None


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@csrf_exempt
def launch_view(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return _answer(405, {"error": "invalid_request", "error_description": "Use POST"}, {"Allow": "POST"})
    try:
        user = _caller(request)
        params = _params(request)
        patient = params.get("patient")
        if not isinstance(patient, str) or not patient:
            raise _Refused(400, "invalid_request", "patient is required")
        encounter = params.get("encounter") or ""
        if not isinstance(encounter, str):
            raise _Refused(400, "invalid_request", "encounter must be a string")
        launch = create_launch(patient, encounter, _minutes(params.get("minutes")), user)
    except _Refused as refused:
        return _answer(refused.status, {"error": refused.error, "error_description": refused.description},
                       refused.headers)
    except LaunchError as exc:
        return _answer(400, {"error": "invalid_request", "error_description": str(exc)})
    return _answer(200, launch.as_json())
