"""The load generator: closed-loop clients on keep-alive HTTP/1.1 connections.

Each client is a thread with its own `http.client` connection (standard library, no extra
dependency): it sends a request, waits for the whole answer, records the latency and sends
the next one, so `clients` is exactly the number of requests in flight. The GIL costs the
client side some throughput, but the same client measures our server and the ceiling app,
so their ratio is fair. Connections are re-opened when the server closes them (gunicorn's
sync workers close after every response).
"""

from __future__ import annotations

import http.client
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

FHIR_JSON = "application/fhir+json"
_RETRYABLE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
)


class Target:
    """Where requests go: a base URL such as http://127.0.0.1:8000/fhir."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        # Headers sent with every request (the bearer token of an authenticated target).
        self.headers = dict(headers or {})
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{base_url!r}: only http:// and https:// URLs are supported")
        self.url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path  # "/fhir"

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout)

    def path(self, relative_or_absolute: str) -> str:
        """A request path from "Patient/1", "/fhir/Patient/1" or a full link URL."""
        if "://" in relative_or_absolute:
            parts = urlsplit(relative_or_absolute)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        if relative_or_absolute.startswith("/"):
            return relative_or_absolute
        if not relative_or_absolute:  # the base itself (batch/transaction)
            return self.prefix or "/"
        return f"{self.prefix}/{relative_or_absolute}"


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


class Connection:
    """One keep-alive connection, re-opened when the server has closed it."""

    def __init__(self, target: Target, timeout: float = 120.0) -> None:
        self.target = target
        self.timeout = timeout
        self.conn = target.connect(timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        headers = {"Accept": FHIR_JSON, **self.target.headers, **(headers or {})}
        if body is not None:
            headers.setdefault("Content-Type", FHIR_JSON)
        url = self.target.path(path)
        for attempt in range(2):
            try:
                self.conn.request(method, url, body=body, headers=headers)
                answer = self.conn.getresponse()
                data = answer.read()
                return Response(answer.status, data, {k.lower(): v for k, v in answer.getheaders()})
            except _RETRYABLE:
                # The server closed an idle keep-alive connection between two requests:
                # reconnect once. A request that fails twice is a real error.
                self.conn.close()
                self.conn = self.target.connect(self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


# -- statistics -------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Result:
    """One workload run: how many requests, how long, and each request's latency."""

    name: str
    concurrency: int
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    operations: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    found: list[int] = field(default_factory=list)  # matches per search: proves searches find things
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        out: dict[str, Any] = {
            "name": self.name,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "operations": self.operations,
            "errors": self.errors,
            "throughput": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "unit": "requests/s",
        }
        for label, fraction in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            value = percentile(ordered, fraction)
            out[label] = round(value, 2) if value is not None else None
        out["mean_ms"] = round(sum(ordered) / len(ordered), 2) if ordered else None
        out["max_ms"] = round(ordered[-1], 2) if ordered else None
        if self.found:
            out["matches_mean"] = round(sum(self.found) / len(self.found), 1)
            out["matches_max"] = max(self.found)
            out["empty_results"] = sum(1 for f in self.found if not f)
        if self.error_samples:
            out["error_samples"] = self.error_samples
        out.update(self.extra)
        return out


class Session:
    """What a workload operation talks through: one client's connection, recording as it goes."""

    def __init__(
        self,
        target: Target,
        result: Result | None = None,
        lock: threading.Lock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.connection = Connection(target)
        self.result = result or Result("single", 1)
        self.lock = lock or threading.Lock()
        self.rng = rng or random.Random(0)
        self.recording = True
        self.latencies: list[float] = []
        self.requests = 0
        self.errors = 0
        self.operations = 0
        self.found: list[int] = []

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: Iterable[int] = (200,),
    ) -> Response | None:
        """One request; None (and an error counted) when the answer is not an expected status."""
        started = time.perf_counter()
        try:
            response = self.connection.request(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._error(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        elapsed = (time.perf_counter() - started) * 1000.0
        if response.status not in tuple(expect):
            self._error(f"{method} {path}: HTTP {response.status} {response.body[:300]!r}")
            return None
        if self.recording:
            self.requests += 1
            self.latencies.append(elapsed)
        return response

    def get(self, path: str, expect: Iterable[int] = (200,)) -> Response | None:
        return self.call("GET", path, expect=expect)

    def record_found(self, matches: int) -> None:
        if self.recording:
            self.found.append(matches)

    def _error(self, message: str) -> None:
        if not self.recording:
            return
        self.errors += 1
        with self.lock:
            if len(self.result.error_samples) < 5:
                self.result.error_samples.append(message)

    def close(self) -> None:
        self.connection.close()


Operation = Callable[[Session], Any]


def closed_loop(
    target: Target,
    name: str,
    operation: Operation,
    *,
    clients: int,
    duration: float,
    warmup: float = 1.0,
    seed: int = 0,
) -> Result:
    """`clients` threads repeat `operation` for `warmup` + `duration` seconds; only the last part counts."""
    result = Result(name, clients)
    lock = threading.Lock()
    sessions = [Session(target, result, lock, random.Random(f"{seed}/{name}/{i}")) for i in range(clients)]
    ready = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def client(session: Session) -> None:
        session.recording = False
        ready.wait()
        start, end = window["start"], window["end"]
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            session.recording = now >= start
            operation(session)
            if session.recording:
                session.operations += 1

    threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in sessions]
    for thread in threads:
        thread.start()
    window["start"] = time.perf_counter() + warmup
    window["end"] = window["start"] + duration
    ready.wait()
    for thread in threads:
        thread.join()
    finished = time.perf_counter()
    result.seconds = max(finished - window["start"], 1e-9)
    _collect(result, sessions)
    return result


def fixed_work(
    target: Target,
    name: str,
    items: Sequence[Any],
    operation: Callable[[Session, Any], Any],
    *,
    clients: int,
    seed: int = 0,
) -> Result:
    """`clients` threads share a queue of `items`; the result covers the whole run (wall time)."""
    result = Result(name, clients)
    lock = threading.Lock()
    sessions = [Session(target, result, lock, random.Random(f"{seed}/{name}/{i}")) for i in range(clients)]
    cursor = iter(range(len(items)))
    ready = threading.Barrier(clients + 1)

    def client(session: Session) -> None:
        ready.wait()
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            operation(session, items[index])
            session.operations += 1

    threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in sessions]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    ready.wait()
    for thread in threads:
        thread.join()
    result.seconds = max(time.perf_counter() - started, 1e-9)
    _collect(result, sessions)
    return result


def _collect(result: Result, sessions: list[Session]) -> None:
    for session in sessions:
        result.requests += session.requests
        result.errors += session.errors
        result.operations += session.operations
        result.latencies_ms.extend(session.latencies)
        result.found.extend(session.found)
        session.close()
