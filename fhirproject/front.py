"""The pages around the API: the front page, liveness and readiness.

`/healthz` answers whenever the process does (no database): a load balancer or Kubernetes
restarts a process that stops answering. `/readyz` answers 200 only when the database is
reachable, every migration this code knows is applied and, with FHIR_JOBS=celery, the job
queue's broker answers; 503 otherwise, so traffic goes
elsewhere while a database is down or a deployment has not migrated yet. Neither needs a
token (they say nothing about data) and neither is logged at INFO (fhirproject.request_log).
"""
from __future__ import annotations

import logging
from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from fhir_api.rest.capability import SOFTWARE

logger = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}


@require_safe
def front_page(request: HttpRequest) -> HttpResponse:
    base = settings.FHIR_BASE_URL or request.build_absolute_uri("/fhir")
    return render(request, "front/index.html", {
        "software": SOFTWARE, "fhir_version": "4.0.1", "base": base,
        "auth_required": settings.FHIR_AUTH_REQUIRED,
        "database": "PostgreSQL" if connections[DEFAULT_DB_ALIAS].vendor == "postgresql" else "SQLite",
    })


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"}, headers=NO_STORE)


@cache
def _known_migrations() -> frozenset[tuple[str, str]]:
    """Every migration of the code on disk (read once per process)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def readiness(alias: str = DEFAULT_DB_ALIAS) -> tuple[bool, dict[str, str]]:
    connection = connections[alias]
    try:
        applied = set(MigrationRecorder(connection).applied_migrations())
    except DatabaseError as exc:
        logger.warning("readiness: database unreachable: %s", " ".join(str(exc).split())[:200])
        return False, {"database": "unreachable"}
    missing = _known_migrations() - applied
    if missing:
        return False, {"database": "ok", "migrations": f"{len(missing)} not applied"}
    if settings.FHIR_JOBS == "celery":  # the embedded and database runners need only the database
        if not _broker_reachable():
            return False, {"database": "ok", "migrations": "ok", "job_queue": "unreachable"}
        return True, {"database": "ok", "migrations": "ok", "job_queue": "ok"}
    return True, {"database": "ok", "migrations": "ok"}


def _broker_reachable() -> bool:
    """The Celery broker (CELERY_BROKER_URL) answers, within a second."""
    from kombu import Connection

    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=1) as broker:
            broker.ensure_connection(max_retries=1, timeout=1)
        return True
    except Exception as exc:  # kombu raises the transport's own errors
        logger.warning("readiness: job queue unreachable: %s", type(exc).__name__)
        return False


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    ready, checks = readiness()
    response = JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                            status=200 if ready else 503, headers=NO_STORE)
    response._has_been_logged = True  # readiness() said why at WARNING; no django.request ERROR per probe
    return response
