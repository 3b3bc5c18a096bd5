"""Prometheus metrics (prometheus-client) and GET /metrics.

Under gunicorn every worker is its own process: gunicorn.conf.py points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, each worker writes its
values into memory-mapped files there, and /metrics adds up the files of all workers (the
library's multi-process mode). Without it (`make run`, tests) the values live in-process.

Recording costs a few microseconds per request: the label children are looked up once and
kept, and the database time is two `perf_counter()` calls around each statement.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import threading
from time import perf_counter

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Latency of FHIR interactions: a read by id takes about 1 ms, a large search or transaction seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("fhir_requests", "HTTP requests answered, by FHIR interaction, resource type and status",
                   ["interaction", "resource_type", "status"])
LATENCY = Histogram("fhir_request_duration_seconds", "Time to answer a request, by FHIR interaction",
                    ["interaction"], buckets=_BUCKETS)
DATABASE_TIME = Histogram("fhir_request_database_seconds",
                          "Time a request spent in database statements, by FHIR interaction",
                          ["interaction"], buckets=_BUCKETS)
TOKENS = Counter("fhir_token_requests", "Requests to the OAuth token endpoint (/auth/token), by grant type "
                 "and result (granted: a token was issued; denied: an OAuth error)", ["grant_type", "result"])

_GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
_children: dict[tuple, tuple] = {}
_local = threading.local()


def record(interaction: str, resource_type: str, status: int, seconds: float, database_seconds: float) -> None:
    key = (interaction, resource_type, status)
    children = _children.get(key)
    if children is None:
        children = (REQUESTS.labels(interaction, resource_type, str(status)),
                    LATENCY.labels(interaction), DATABASE_TIME.labels(interaction))
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)
    children[2].observe(database_seconds)


def record_token_request(request: HttpRequest, status: int) -> None:
    grant_type = request.POST.get("grant_type", "")
    TOKENS.labels(grant_type if grant_type in _GRANT_TYPES else "other",
                  "granted" if status == 200 else "denied").inc()


# -- database time: a wrapper around every statement of every connection (Django's
# execute_wrappers), adding up per thread; a thread serves one request at a time.

def start_database_clock(connection) -> None:
    """Start adding up this thread's statement time (for the request it is about to serve)."""
    _local.seconds = 0.0
    if _timed not in connection.execute_wrappers:  # once per connection wrapper (per thread)
        connection.execute_wrappers.append(_timed)


def database_seconds() -> float:
    return getattr(_local, "seconds", 0.0)


def _timed(execute, sql, params, many, context):
    started = perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        _local.seconds = getattr(_local, "seconds", 0.0) + perf_counter() - started


# -- GET /metrics

def _allowed(request: HttpRequest) -> bool:
    secret = settings.METRICS_BEARER_TOKEN
    if secret:
        scheme, _, sent = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), secret.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Method not allowed\n", status=405, content_type="text/plain", headers={"Allow": "GET, HEAD"})
    if not _allowed(request):
        return HttpResponse("Forbidden: /metrics is open to METRICS_ALLOWED_IPS or the METRICS_BEARER_TOKEN\n",
                            status=403, content_type="text/plain")
    registry = CollectorRegistry()
    if MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Everything())
    registry.register(JOB_QUEUE)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})


class _Everything:
    """This process's own metrics (without gunicorn's multi-process mode)."""

    def collect(self):
        yield from REGISTRY.collect()


class _JobQueue:
    """Jobs waiting or running, by kind, read from the job table when /metrics is scraped (the
    table is the queue's state whatever runs the jobs: Celery, `run_jobs` or the embedded thread)."""

    def collect(self):
        from django.db.models import Count

        from fhir_api.store.models import Job

        family = GaugeMetricFamily("fhir_jobs", "Background jobs ($export, $reindex) queued or running, by kind",
                                   labels=["kind", "status"])
        rows = (Job.objects.filter(status__in=(Job.QUEUED, Job.RUNNING)).values("kind", "status")
                .annotate(n=Count("id")).order_by())
        for row in rows:
            family.add_metric([row["kind"], row["status"]], row["n"])
        yield family


JOB_QUEUE = _JobQueue()
