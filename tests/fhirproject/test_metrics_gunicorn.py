"""/metrics under gunicorn (`make serve`): the counts of every worker process, added up."""
from __future__ import annotations

import re

import pytest
from django.db import connection

from tests.live import database_url, request, serve

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _count(port: int, status: str) -> float:
    _, _, body = request(port, "GET", "/metrics", headers={"Accept": "text/plain"})
    match = re.search(r'^fhir_requests_total\{interaction="read",resource_type="Patient",status="%s"\} (\S+)$'
                      % status, body.decode(), re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_add_up_the_requests_of_every_worker(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the production server runs on PostgreSQL")
    with serve(database_url(connection.settings_dict), WEB_CONCURRENCY="2",
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path)) as server:
        assert len(server.workers()) == 2
        before = _count(server.port, "404")
        # New connections each time (no keep-alive), so both workers take some of them.
        for n in range(40):
            assert request(server.port, "GET", f"/fhir/Patient/missing-{n}")[0] == 404
        assert _count(server.port, "404") - before == 40
        assert len(list(tmp_path.glob("*.db"))) >= 2  # each worker wrote its own values
        ready = request(server.port, "GET", "/readyz")
        assert ready[0] == 200
