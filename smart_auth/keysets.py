"""The public keys a client signs its assertions with: a registered JWKS, or a JWKS URL.

https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html -- a JWKS URL is
fetched only for a registered client, with a short timeout, a size limit and a cache, and
never from a private, loopback or link-local address unless SMART_JWKS_ALLOW_PRIVATE is on
(every address the host resolves to is checked, and redirects are not followed, so a public
name cannot hand the request to an internal service).
"""
from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from jwcrypto import jwk

FETCH_TIMEOUT = 5.0  # seconds, connect and read
MAX_BYTES = 64 * 1024  # a key set is a few KiB; anything larger is refused
CACHE_SECONDS = 300.0
# A kid missing from a cached set may mean the client rotated its keys: fetch again, but
# no more often than this, so bad assertions cannot make us hammer the client's server.
REFETCH_AFTER = 30.0


class KeySetError(ValueError):
    """The client's keys cannot be had or are not a public JSON Web Key Set."""


def parse_keyset(text: str) -> jwk.JWKSet:
    """A JWKS document holding public keys only."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise KeySetError("not a JSON Web Key Set (an object with a 'keys' array)")
        keyset = jwk.JWKSet.from_json(json.dumps(data))
    except KeySetError:
        raise
    except Exception as exc:  # jwcrypto raises several types for malformed keys
        raise KeySetError(f"not a JSON Web Key Set: {exc}") from None
    if any(key.has_private for key in keyset):
        raise KeySetError("the key set holds private keys")
    return keyset


_cache: dict[str, tuple[float, jwk.JWKSet]] = {}
_lock = threading.Lock()


def client_keyset(client, kid: str) -> jwk.JWKSet:
    """The client's public keys, with `kid` among them if at all possible."""
    if client.jwks.strip():
        return parse_keyset(client.jwks)
    if not client.jwks_uri:
        raise KeySetError("the client has no registered keys (jwks or jwks_uri)")
    uri = client.jwks_uri
    now = time.monotonic()
    with _lock:
        hit = _cache.get(uri)
    if hit is not None:
        fetched, keyset = hit
        fresh = now - fetched < CACHE_SECONDS
        if fresh and (keyset.get_key(kid) is not None or now - fetched < REFETCH_AFTER):
            return keyset
    keyset = parse_keyset(fetch(uri))
    with _lock:
        _cache[uri] = (time.monotonic(), keyset)
    return keyset


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _check_host(host: str, port: int) -> None:
    """Refuse hosts that resolve to addresses inside the network (SSRF)."""
    if settings.SMART_JWKS_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise KeySetError(f"the JWKS host {host!r} cannot be resolved") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            raise KeySetError(f"the JWKS host {host!r} resolves to a non-public address")


def fetch(uri: str) -> str:
    """GET a JWKS URL within the limits above."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KeySetError("the JWKS URL must be an absolute https URL")
    if parts.scheme == "http" and not settings.SMART_JWKS_ALLOW_PRIVATE:
        raise KeySetError("the JWKS URL must use https")
    _check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    try:
        with requests.get(uri, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False,
                          headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise KeySetError(f"the JWKS URL answered HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_content(8192):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise KeySetError("the JWKS document is too large")
    except requests.RequestException as exc:
        raise KeySetError(f"the JWKS URL could not be fetched ({type(exc).__name__})") from None
    return body.decode("utf-8", "replace")
