"""Registering SMART apps: the rules a registration must follow, in one place.

https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html and
https://hl7.org/fhir/smart-app-launch/backend-services.html -- an app is public (no
secret), confidential symmetric (a client secret, HTTP Basic) or confidential asymmetric
(`private_key_jwt`, with public keys in a registered JWKS or at a JWKS URL). Backend
services use `client_credentials` and always authenticate with keys. The management
command (and later the admin) call these functions; every refusal is a RegistrationError
with a message of one line.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from jwcrypto.common import JWException
from jwcrypto.jwk import JWKSet
from oauth2_provider.generators import generate_client_secret

from fhir_api.store import repository
from smart_auth import purpose
from smart_auth.access import CLIENT_ID_SYSTEM
from smart_auth.models import Client
from smart_auth.scopes import ScopeError, check_scope, parse_clinical

AUTHORIZATION_CODE = "authorization_code"
CLIENT_CREDENTIALS = "client_credentials"
# The OAuth grant type names (as the token endpoint and discovery say them) to DOT's.
GRANT_TYPES = {
    AUTHORIZATION_CODE: Client.GRANT_AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS: Client.GRANT_CLIENT_CREDENTIALS,
}
# Keys a client may sign its assertions with (token_endpoint_auth_signing_alg_values_supported
# is RS384 and ES384): RSA and elliptic-curve public keys.
ASYMMETRIC_KEY_TYPES = ("RSA", "EC")


class RegistrationError(ValueError):
    """A registration that cannot be accepted; the message is one line for the operator."""


@dataclass(frozen=True)
class Registration:
    """A new client, and its secret when it has one the operator must be shown (once)."""

    client: Client
    client_secret: str | None


def parse_jwks(text: str, source: str = "the JWKS") -> dict[str, Any]:
    """A JSON Web Key Set of public asymmetric keys, each with a `kid`, as a dict."""
    try:
        document = json.loads(text)
    except ValueError:
        raise RegistrationError(f"{source} is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise RegistrationError(f'{source} is not a JSON Web Key Set (an object with a "keys" array)')
    if not document["keys"]:
        raise RegistrationError(f"{source} holds no keys")
    try:
        key_set = JWKSet.from_json(json.dumps(document))
    except (JWException, ValueError, TypeError) as exc:
        raise RegistrationError(f"{source} is not a valid JSON Web Key Set: {_first_line(exc)}") from None
    kids: set[str] = set()
    for key in key_set:
        kid = key.get("kid")
        kty = key.get("kty")
        if kty not in ASYMMETRIC_KEY_TYPES:
            raise RegistrationError(
                f"{source}: key {kid or '(no kid)'} is {kty}; only RSA and EC public keys are allowed")
        if key.has_private:
            raise RegistrationError(
                f"{source} contains a private key ({kid or 'no kid'}); register public keys only")
        if not kid:
            raise RegistrationError(
                f'{source}: every key needs a "kid" (client assertions name their key by it)')
        if kid in kids:
            raise RegistrationError(f"{source}: kid {kid!r} is used by more than one key")
        kids.add(kid)
    return document


def check_jwks_uri(uri: str) -> str:
    """An https URL (plain http only where SMART_JWKS_ALLOW_PRIVATE allows local keys)."""
    schemes = ["https", "http"] if settings.SMART_JWKS_ALLOW_PRIVATE else ["https"]
    try:
        URLValidator(schemes=schemes)(uri)
    except ValidationError:
        raise RegistrationError(f"--jwks-uri {uri!r} is not an {' or '.join(schemes)} URL") from None
    return uri


def check_scopes(scopes: list[str], grant_type: str) -> list[str]:
    """The scopes a client is registered for, each valid and of the client's kind."""
    out: list[str] = []
    for scope in scopes:
        try:
            check_scope(scope)
            clinical = parse_clinical(scope)
        except ScopeError as exc:
            raise RegistrationError(f"bad scope: {exc}") from None
        if grant_type == CLIENT_CREDENTIALS and (clinical is None or clinical.level != "system"):
            raise RegistrationError(
                f"scope {scope!r}: a backend service (client_credentials) may only have system/ scopes")
        if grant_type == AUTHORIZATION_CODE and clinical is not None and clinical.level == "system":
            raise RegistrationError(
                f"scope {scope!r}: system/ scopes are for backend services (--grant-type client_credentials)")
        if scope not in out:
            out.append(scope)
    return out


def _check_redirect_uri(uri: str) -> str:
    # DOT's own validator (in full_clean) checks the scheme against ALLOWED_REDIRECT_URI_SCHEMES;
    # this catches what it lets through. RFC 6749 section 3.1.2: absolute, no fragment.
    parts = urlsplit(uri)
    # Native apps may use a private-use scheme (RFC 8252 section 7.1) when
    # SMART_REDIRECT_URI_SCHEMES allows it: no host there; http(s) needs one.
    needs_host = parts.scheme in ("http", "https")
    if not parts.scheme or (needs_host and not parts.netloc) or any(c.isspace() for c in uri):
        raise RegistrationError(f"--redirect-uri {uri!r} is not an absolute URL")
    if parts.fragment or uri.endswith("#"):
        raise RegistrationError(f"--redirect-uri {uri!r} must not have a #fragment")
    return uri


def _check_launch_uri(uri: str) -> str:
    try:
        URLValidator(schemes=["http", "https"])(uri)
    except ValidationError:
        raise RegistrationError(f"--launch-uri {uri!r} is not an http or https URL") from None
    return uri


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _unknowable_secret() -> str:
    # A client that authenticates without a secret still gets one nobody ever sees, stored
    # hashed: DOT compares a blank stored secret with a blank sent one as equal, so blank
    # would let anyone authenticate as the client with HTTP Basic "client_id:".
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class Checked:
    """A registration's fields after every rule was applied."""

    name: str
    client_type: str
    grant_type: str
    redirect_uris: list[str]
    allowed_scopes: list[str]
    jwks: str
    jwks_uri: str
    launch_uri: str
    purpose_of_use: str

    @property
    def symmetric(self) -> bool:
        return self.client_type == Client.CLIENT_CONFIDENTIAL and not (self.jwks or self.jwks_uri)


def check_registration(
    *,
    name: str,
    redirect_uris: list[str] | None = None,
    public: bool = False,
    grant_type: str = AUTHORIZATION_CODE,
    scopes: list[str] | None = None,
    jwks: str | None = None,
    jwks_uri: str | None = None,
    launch_uri: str | None = None,
    purpose_of_use: str = "",
    break_glass: bool = False,
) -> Checked:
    """Every rule a registration must follow (for a new client and for a change to one)."""
    name = name.strip()
    if not name:
        raise RegistrationError("--name must not be blank")
    if grant_type not in GRANT_TYPES:
        raise RegistrationError(f"--grant-type must be {' or '.join(GRANT_TYPES)}, not {grant_type!r}")
    redirect_uris = [_check_redirect_uri(uri) for uri in dict.fromkeys(redirect_uris or [])]
    asymmetric = bool(jwks or jwks_uri)
    if jwks and jwks_uri:
        raise RegistrationError("give --jwks or --jwks-uri, not both")
    if public and asymmetric:
        raise RegistrationError("a --public client has no keys: drop --jwks/--jwks-uri or --public")
    if grant_type == AUTHORIZATION_CODE and not redirect_uris:
        raise RegistrationError("an authorization_code client needs at least one --redirect-uri")
    if grant_type == CLIENT_CREDENTIALS:
        if public:
            raise RegistrationError("a client_credentials client cannot be --public")
        if not asymmetric:
            raise RegistrationError("a client_credentials client needs --jwks FILE or --jwks-uri URL")
        if redirect_uris:
            raise RegistrationError("a client_credentials client has no --redirect-uri")
    jwks_text = json.dumps(parse_jwks(jwks, "--jwks")) if jwks else ""
    if jwks_uri:
        check_jwks_uri(jwks_uri)
    if launch_uri:
        _check_launch_uri(launch_uri)
    allowed = check_scopes(scopes or [], grant_type)
    purpose_of_use = purpose_of_use.strip()
    if purpose_of_use:
        try:
            purpose.check_allowed(purpose.check_code(purpose_of_use, "--purpose-of-use"), break_glass)
        except purpose.PurposeError as exc:
            raise RegistrationError(str(exc)) from None
    return Checked(
        name=name, client_type=Client.CLIENT_PUBLIC if public else Client.CLIENT_CONFIDENTIAL,
        grant_type=grant_type, redirect_uris=redirect_uris, allowed_scopes=allowed, jwks=jwks_text,
        jwks_uri=jwks_uri or "", launch_uri=launch_uri or "", purpose_of_use=purpose_of_use,
    )


def _apply(client: Client, checked: Checked) -> None:
    client.name = checked.name
    client.client_type = checked.client_type
    client.authorization_grant_type = GRANT_TYPES[checked.grant_type]
    client.redirect_uris = " ".join(checked.redirect_uris)
    # id_tokens are RS256 (OpenID Connect), signed with the server's key.
    client.algorithm = Client.RS256_ALGORITHM if checked.grant_type == AUTHORIZATION_CODE else Client.NO_ALGORITHM
    client.allowed_scopes = " ".join(checked.allowed_scopes)
    client.jwks = checked.jwks
    client.jwks_uri = checked.jwks_uri
    client.launch_uri = checked.launch_uri
    client.purpose_of_use = checked.purpose_of_use


def _clean(client: Client) -> None:
    try:
        client.full_clean()  # DOT's own rules (redirect URI schemes, ...)
    except ValidationError as exc:
        messages = [f"{field}: {msg}" for field, msgs in exc.message_dict.items() for msg in msgs]
        raise RegistrationError("; ".join(messages).replace("\n", " ")) from None


@transaction.atomic
def register(*, break_glass: bool = False, **fields: Any) -> Registration:
    """Validate and store a new client (fields: those of check_registration)."""
    checked = check_registration(break_glass=break_glass, **fields)
    secret = generate_client_secret() if checked.symmetric else _unknowable_secret()
    client = Client(
        client_secret=secret,
        hash_client_secret=True,
        break_glass=break_glass,
        access_token_lifetime=(settings.SMART_BACKEND_TOKEN_SECONDS if checked.grant_type == CLIENT_CREDENTIALS
                               else settings.SMART_ACCESS_TOKEN_SECONDS),
        refresh_token_lifetime=settings.SMART_REFRESH_TOKEN_SECONDS,
    )
    _apply(client, checked)
    _clean(client)
    client.save()  # ClientSecretField hashes the secret here
    client.device_id = register_device(client)
    client.save(update_fields=["device_id"])
    return Registration(client, secret if checked.symmetric else None)


@transaction.atomic
def change(client: Client, *, break_glass: bool, is_active: bool, access_token_lifetime: int,
           refresh_token_lifetime: int, **fields: Any) -> str | None:
    """Apply a changed registration to a stored client, under the rules of a new one.

    Returns a new client secret when the change made the client confidential symmetric
    (it had no secret anyone knew): shown once, like at registration.
    """
    was_symmetric = authentication(client) == "client_secret_basic"
    checked = check_registration(break_glass=break_glass, **fields)
    if access_token_lifetime < 1 or refresh_token_lifetime < 1:
        raise RegistrationError("token lifetimes must be at least 1 second")
    _apply(client, checked)
    client.break_glass = break_glass
    client.is_active = is_active
    client.access_token_lifetime = access_token_lifetime
    client.refresh_token_lifetime = refresh_token_lifetime
    secret = None
    if checked.symmetric and not was_symmetric:
        secret = generate_client_secret()
    elif not checked.symmetric and was_symmetric:
        client.client_secret = _unknowable_secret()  # nobody may keep using the old secret
        client.hash_client_secret = True
    if secret is not None:
        client.client_secret = secret
        client.hash_client_secret = True
    _clean(client)
    client.save()
    return secret


def register_device(client: Client) -> str:
    """The Device resource that stands for the app (a Consent names the app as its actor);
    its identifier carries the client id. Returns the Device's id."""
    body = {
        "resourceType": "Device",
        "status": "active",
        "identifier": [{"system": CLIENT_ID_SYSTEM, "value": client.client_id}],
        "deviceName": [{"name": client.name, "type": "user-friendly-name"}],
        "type": {"text": "SMART on FHIR client app"},
    }
    return repository.create("Device", body).stored.logical_id


def authentication(client: Client) -> str:
    """How the client authenticates at the token endpoint."""
    if client.is_public:
        return "none"
    if client.jwks or client.jwks_uri:
        return "private_key_jwt"
    return "client_secret_basic"


def rotate_secret(client: Client) -> str:
    """A new secret for a confidential symmetric client (the old one stops working)."""
    kind = authentication(client)
    if kind != "client_secret_basic":
        why = "it is public" if kind == "none" else "it authenticates with its keys (private_key_jwt)"
        raise RegistrationError(f"client {client.client_id} has no secret to rotate: {why}")
    secret = generate_client_secret()
    client.client_secret = secret
    client.hash_client_secret = True
    client.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    return secret


def describe(client: Client) -> dict[str, Any]:
    """The registration as JSON (never the secret, which is stored only as a hash)."""
    kids = []
    if client.jwks:
        kids = [key.get("kid") for key in json.loads(client.jwks).get("keys", [])]
    grant = next((name for name, dot in GRANT_TYPES.items() if dot == client.authorization_grant_type),
                 client.authorization_grant_type)
    return {
        "client_id": client.client_id,
        "name": client.name,
        "client_type": client.client_type,
        "token_endpoint_auth_method": authentication(client),
        "grant_type": grant,
        "redirect_uris": client.redirect_uris.split(),
        "scopes": client.scope_list,  # empty: any scope of the client's kind
        "jwks_kids": kids,
        "jwks_uri": client.jwks_uri,
        "launch_uri": client.launch_uri,
        "is_active": client.is_active,
        "purpose_of_use": client.purpose_of_use,
        "break_glass": client.break_glass,
        "device": f"Device/{client.device_id}" if client.device_id else None,
        "created": client.created.isoformat() if client.created else None,
    }
