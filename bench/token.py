"""A bearer token for the benchmark's authenticated server: a client app and a `system/*.rs`
token stored the way the authorization server stores them (only its SHA-256)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """
import secrets
from datetime import timedelta
import django
django.setup()
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, set_token_value
from smart_auth.models import Client
client, _ = Client.objects.get_or_create(
    name="benchmark", defaults={"client_type": "confidential", "authorization_grant_type": "client-credentials"})
raw = secrets.token_urlsafe(32)
token = get_access_token_model()(application=client, scope=SCOPE,
                                 expires=timezone.now() + timedelta(hours=2))
set_token_value(token, raw)
token.save()
print(raw)
"""


def mint_token(env: dict[str, str], scope: str = "system/*.rs") -> str:
    """Run in a subprocess with the server's settings (the benchmark itself stays Django-free)."""
    done = subprocess.run([sys.executable, "-c", f"SCOPE = {scope!r}\n" + _SCRIPT], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def authenticated_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "FHIR_AUTH_REQUIRED": "true"}
