"""Which requests read from a replica, and read-your-writes for a client that just wrote.

With DATABASE_REPLICA_URLS set, the read-only FHIR interactions (read, vread, history,
search by GET or POST, $everything) read from a replica (fhir_api.store.routing), unless the
client is pinned: any request of the client with an unsafe method (POST, PUT, PATCH, DELETE:
a write, or an attempt that may be retried after reading) pins it to the primary for
DATABASE_REPLICA_PIN_SECONDS, so it reads its own writes at once although a replica replays
them a little later.

Who "the client" is: the SHA-256 of its bearer token when it sends one (the same token reads
what it wrote, and a token names one app for one user; never the token itself), otherwise
its address (REMOTE_ADDR). The address errs on the safe side: clients behind one proxy or NAT
share it, so one's write pins them all to the primary (more primary reads, never a stale
one). A cookie was not chosen: FHIR clients rarely keep cookies, and one that does not would
miss its own writes.

The pins live in Django's cache, Redis (REDIS_URL) in any deployment with replicas, since the
client's next request may reach any server process. When the cache cannot be read, the
request reads the primary.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from fhir_api.rest.interactions import interaction_of
from fhir_api.store import routing

log = logging.getLogger(__name__)

# What a replica may answer: interactions that only read the FHIR data.
REPLICA_INTERACTIONS = frozenset({
    "read", "vread", "history-instance", "history-type", "history-system",
    "search-type", "search-system", "search-compartment", "$everything",
})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PIN_PREFIX = "replica-pin:"


def client_key(request: HttpRequest) -> str:
    """Who pins: the bearer token's SHA-256, or the client's address without one."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()
    return "address:" + request.META.get("REMOTE_ADDR", "")


def pin(request: HttpRequest) -> None:
    seconds = settings.DATABASE_REPLICA_PIN_SECONDS
    if not seconds:
        return
    try:
        caches["default"].set(_PIN_PREFIX + client_key(request), 1, timeout=seconds)
    except Exception:  # the cache is down: the write stands, the client may read a replica
        log.warning("cannot record a read-your-writes pin (cache unreachable)", exc_info=True)


def pinned(request: HttpRequest) -> bool:
    if not settings.DATABASE_REPLICA_PIN_SECONDS:
        return False
    try:
        return caches["default"].get(_PIN_PREFIX + client_key(request)) is not None
    except Exception:  # cannot tell: the primary is always right
        log.warning("cannot read read-your-writes pins (cache unreachable): reading the primary", exc_info=True)
        return True


class ReplicaReadMiddleware:
    """Opens a replica scope for the read-only interactions of clients that are not pinned;
    pins clients after their unsafe requests. Not in the stack without replicas."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not routing.replica_aliases():
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        finally:
            scope = getattr(request, "_replica_scope", None)
            if scope is not None:
                routing.leave(scope)
        if request.method not in SAFE_METHODS and not getattr(request, "_replica_read", False):
            pin(request)
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        request.replica_alias = None
        request._replica_read = request.path.startswith("/fhir") and interaction_of(request)[0] in REPLICA_INTERACTIONS
        if not request._replica_read or pinned(request):
            return None
        alias = routing.choose_replica()
        if alias is not None:
            request.replica_alias = alias
            request._replica_scope = routing.enter(alias)
        return None
