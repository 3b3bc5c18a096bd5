"""private_key_jwt: a client proves who it is with a JWT signed by its private key.

https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html and RFC 7523 --
`iss` and `sub` are the client id, `aud` is the token URL, `exp` at most five minutes ahead,
`jti` used once, the header names the key (`kid`) and an asymmetric algorithm (RS384 or
ES384; never `none` or a shared-secret HMAC). Signatures are checked by jwcrypto.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from django.db import IntegrityError, transaction
from django.utils import timezone as dj_timezone
from jwcrypto import jws, jwt
from jwcrypto.common import JWException

from smart_auth.keysets import KeySetError, client_keyset
from smart_auth.models import UsedAssertion, digest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
MAX_LIFETIME = 300  # seconds an assertion may be valid for


class AssertionError_(ValueError):
    """Why a client assertion was refused (said in the invalid_client description)."""


def unverified_parts(assertion: str) -> tuple[dict, dict]:
    """(header, claims) of a compact JWS, not yet trusted."""
    token = jws.JWS()
    try:
        token.deserialize(assertion)
        header = token.jose_header
        claims = json.loads(token.objects["payload"])
    except (JWException, ValueError, KeyError, TypeError):
        raise AssertionError_("the client assertion is not a signed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionError_("the client assertion is not a signed JWT")
    return header, claims


def claimed_client_id(assertion: str) -> str:
    """The client the assertion says it comes from (its `iss`), before any check."""
    _header, claims = unverified_parts(assertion)
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise AssertionError_("the client assertion has no iss")
    return iss


def verify(assertion: str, client, token_url: str) -> None:
    """Check a client assertion for `client`; raise AssertionError_ on any fault."""
    header, _ = unverified_parts(assertion)
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AssertionError_(f"the client assertion must be signed with {' or '.join(ALGORITHMS)}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AssertionError_("the client assertion header has no kid")
    try:
        keyset = client_keyset(client, kid)
    except KeySetError as exc:
        raise AssertionError_(f"the client's keys are unavailable: {exc}") from None
    key = keyset.get_key(kid)
    if key is None:
        raise AssertionError_(f"no registered key has kid {kid!r}")
    try:
        # check_claims=False: jwcrypto would accept a missing exp; the claims are checked below.
        token = jwt.JWT(jwt=assertion, key=key, algs=[alg], check_claims=False)
        claims = json.loads(token.claims)
    except (JWException, ValueError, TypeError):
        raise AssertionError_("the client assertion's signature does not verify") from None
    _check_claims(claims, client.client_id, token_url)


def _check_claims(claims: dict, client_id: str, token_url: str) -> None:
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AssertionError_("iss and sub of the client assertion must both be the client id")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if token_url not in audiences:
        raise AssertionError_(f"the client assertion's aud must be the token URL {token_url}")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise AssertionError_("the client assertion has no exp")
    now = time.time()
    if exp <= now:
        raise AssertionError_("the client assertion has expired")
    if exp > now + MAX_LIFETIME:
        raise AssertionError_("the client assertion's exp is more than 5 minutes ahead")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AssertionError_("the client assertion has no jti")
    _use_once(client_id, jti, exp)


def _use_once(client_id: str, jti: str, exp: float) -> None:
    """Record the jti until the assertion expires; a second use is a replay."""
    expires = datetime.fromtimestamp(exp, tz=timezone.utc)
    try:
        with transaction.atomic():
            UsedAssertion.objects.create(client_id=client_id, jti_digest=digest(jti), expires=expires)
    except IntegrityError:
        raise AssertionError_("the client assertion's jti was already used") from None
    # Rows past their assertion's exp can never match a valid assertion again.
    UsedAssertion.objects.filter(expires__lt=dj_timezone.now()).delete()
