"""Signing out ends the app sessions that asked to live only as long as the sign-in.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-a-refresh-token
-- `online_access`: the refresh token is good while the person stays signed in;
`offline_access` tokens survive sign-out.
"""
from __future__ import annotations

from oauth2_provider.models import revoke_access_token

from smart_auth import consent
from smart_auth.models import TokenContext


def end_online_tokens(sender, request=None, user=None, **kwargs) -> None:
    """user_logged_out receiver: revoke the online tokens (and refresh tokens) of that session."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if not session_key:
        return
    online = TokenContext.objects.filter(online=True, session_key=session_key).select_related("access_token")
    for context in list(online):
        revoke_access_token(context.access_token)


def consent_written(sender, resource=None, content=None, **kwargs) -> None:
    """resource_written receiver: a Consent's compiled rows change with it, in its transaction."""
    if resource is not None and resource.resource_type == consent.RESOURCE_TYPE:
        consent.written(resource, content)


def consent_many_written(sender, items=(), **kwargs) -> None:
    """resources_written receiver (transaction Bundles): the same for each Consent."""
    for resource, content in items:
        consent_written(sender, resource=resource, content=content)
