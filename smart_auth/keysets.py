"""The public keys a client signs its assertions with: a registered JWKS, or a JWKS URL.

https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html -- a JWKS URL is
fetched only for a registered client, with a short timeout, a size limit and a cache, and
never from a private, loopback or link-local address unless SMART_JWKS_ALLOW_PRIVATE is on
(every address the host resolves to is checked, the connection goes to the checked address,
and redirects are not followed, so a public name cannot hand the request to an internal
service).
"""
from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import certifi
import urllib3
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


def _address(host: str, port: int) -> str:
    """The one address the JWKS request connects to. The name is resolved once, here, and
    the connection goes to that address (the Host header and the TLS certificate check keep
    the name), so a name that answers a public address to this check and a private one to a
    second lookup (DNS rebinding) cannot hand the request to an internal service."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise KeySetError(f"the JWKS host {host!r} cannot be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not settings.SMART_JWKS_ALLOW_PRIVATE:
        if any(not a.is_global or a.is_multicast for a in addresses):
            raise KeySetError(f"the JWKS host {host!r} resolves to a non-public address")
    if not addresses:
        raise KeySetError(f"the JWKS host {host!r} cannot be resolved")
    return str(addresses[0])


def fetch(uri: str) -> str:
    """GET a JWKS URL within the limits above."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KeySetError("the JWKS URL must be an absolute https URL")
    if parts.scheme == "http" and not settings.SMART_JWKS_ALLOW_PRIVATE:
        raise KeySetError("the JWKS URL must use https")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _address(parts.hostname, port)
    timeout = urllib3.Timeout(connect=FETCH_TIMEOUT, read=FETCH_TIMEOUT)
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, retries=False, maxsize=1, server_hostname=parts.hostname,
            assert_hostname=parts.hostname, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen("GET", target, headers={"Host": parts.netloc, "Accept": "application/json"},
                                redirect=False, preload_content=False, assert_same_host=False)
        try:
            if response.status != 200:
                raise KeySetError(f"the JWKS URL answered HTTP {response.status}")
            body = b""
            for chunk in response.stream(8192):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise KeySetError("the JWKS document is too large")
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise KeySetError(f"the JWKS URL could not be fetched ({type(exc).__name__})") from None
    finally:
        pool.close()
    return body.decode("utf-8", "replace")
