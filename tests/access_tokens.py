"""Access tokens made directly in the database, for tests of enforcement on the FHIR API.

The OAuth flows that issue tokens are tested in tests/smart_auth; enforcement tests need
tokens with exact scopes and context, so they store them the way DOT does (only the
SHA-256 of the token is kept) and return the raw token.
"""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, set_token_value

from smart_auth.models import Client, FhirUserLink, TokenContext


def make_client(name: str = "test app", **fields: Any) -> Client:
    defaults = {"client_type": Client.CLIENT_CONFIDENTIAL, "authorization_grant_type": Client.GRANT_CLIENT_CREDENTIALS}
    return Client.objects.create(name=name, **{**defaults, **fields})


PASSWORD = "correct horse battery staple"


def make_user(username: str, fhir_user: str = "", *, staff: bool = False, active: bool = True):
    """A person who can sign in with PASSWORD; `fhir_user` ("Practitioner/x") links their record."""
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=staff,
                                                is_active=active)
    if fhir_user:
        kind, _, ident = fhir_user.partition("/")
        FhirUserLink.objects.create(user=user, resource_type=kind, logical_id=ident)
    return user


def mint(
    scope: str,
    *,
    patient: str | None = None,
    fhir_user: str = "",
    user=None,
    client: Client | None = None,
    expires_in: int = 3600,
) -> str:
    """A bearer token granting `scope` (with a launch patient / fhirUser when given)."""
    client = client or make_client()
    raw = secrets.token_urlsafe(32)
    token = get_access_token_model()(
        user=user, application=client, scope=scope, expires=timezone.now() + timedelta(seconds=expires_in)
    )
    set_token_value(token, raw)
    token.save()
    if patient or fhir_user:
        TokenContext.objects.create(access_token=token, patient=patient or "", fhir_user=fhir_user)
    return raw


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
