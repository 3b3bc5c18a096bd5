"""A smoke run of the benchmark code against Django's live server: tiny sizes, not timed.

It proves the generator, the load generator, the workloads and the report work end to end
(https://hl7.org/fhir/R4/http.html#transaction for the ingest); the figures themselves mean
nothing here. On PostgreSQL the ceilings run too: the COPY into a bare table and the
minimal WSGI app (served in a thread) reading the same stored JSON.
"""

from __future__ import annotations

import os
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.db import connection

from bench import ceiling_app, ceilings, generate, report, workloads
from bench.load import Result, Target
from bench.runner import Config, merged, record, run_workloads
from bench.workloads import Catalog

SUMMARY_KEYS = {
    "group",
    "name",
    "concurrency",
    "seconds",
    "requests",
    "errors",
    "throughput",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "max_ms",
}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # no access log in test output
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    s = connection.settings_dict
    return make_conninfo(
        dbname=s["NAME"],
        user=s.get("USER") or None,
        password=s.get("PASSWORD") or None,
        host=s.get("HOST") or None,
        port=str(s["PORT"]) if s.get("PORT") else None,
    )


@pytest.fixture
def ceiling_url(live_server):
    """The minimal WSGI ceiling app in a thread, reading the test database (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        yield None
        return
    server = make_server(
        "127.0.0.1",
        0,
        ceiling_app.make_app(_conninfo()),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()
    server.server_close()


def test_the_benchmark_runs_end_to_end_on_tiny_sizes(live_server, ceiling_url, tmp_path):
    postgres = connection.vendor == "postgresql"
    # SQLite's in-memory test database is one connection shared by the live server's
    # threads: keep it to one client there so transactions never interleave on it.
    clients = 2 if postgres else 1
    target = Target(live_server.url + "/fhir")
    bundles = list(generate.patient_bundles(7, 2))
    catalog = Catalog()

    ingest = workloads.ingest(
        target, bundles, clients=clients, catalog=catalog, providers=generate.providers_bundle(7)
    )
    assert ingest.errors == 0, ingest.error_samples
    assert len(catalog.patients) == 2
    assert ingest.extra["entries"] == sum(len(b["entry"]) for b in bundles)

    results: dict = {"ingest": {"group": "ingest", **ingest.summary()}, "ceilings": {}, "notes": []}
    if postgres:
        results["ceilings"]["copy"] = ceilings.copy_ceiling(
            _conninfo(), ceilings.copy_rows(bundles), minimum=0
        )
        assert results["ceilings"]["copy"]["resources"] == ingest.extra["entries"]

    config = Config(
        duration=0.4,
        warmup=0.05,
        read_clients=(1, clients),
        search_clients=clients,
        count_clients=1,
        everything_clients=1,
        mixed_clients=clients,
        mixed_seconds=0.6,
        seed=7,
        long_chart=60,
    )
    measured = run_workloads(
        target,
        catalog,
        config,
        ceiling=Target(ceiling_url) if ceiling_url else None,
        worker_pids=lambda: [os.getpid()],
    )
    results.update(workloads=measured["workloads"], memory=measured["memory"], notes=measured["notes"])
    # The level comparison's code path (both "levels" are this one server here).
    more = [workloads.prepare(b) for b in generate.patient_bundles(8, 2)]
    results["ingest_levels"] = workloads.ingest_levels({"standard": target, "full": target}, more,
                                                       clients=clients, chunk=1)
    assert results["ingest_levels"]["standard"]["errors"] == results["ingest_levels"]["full"]["errors"] == 0
    assert results["ingest_levels"]["standard"]["resources_created"] > 0
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)

    groups = {w["group"] for w in results["workloads"]}
    assert {"read", "search", "count", "lastn", "mixed", "everything-long"} <= groups
    (chart,) = [w for w in results["workloads"] if w["group"] == "everything-long"]
    assert chart["matches_mean"] >= 60  # the whole long chart in the answer (all its pages)
    assert any(t["target"].startswith(chart["name"]) for t in results["targets"])
    assert ("ceiling-read" in groups) == postgres
    assert len([w for w in results["workloads"] if w["group"] == "search"]) == 8
    for summary in results["workloads"]:
        assert SUMMARY_KEYS <= summary.keys(), summary
        assert summary["requests"] > 0 and summary["errors"] == 0, summary
        if summary["group"] in ("search", "count", "lastn"):
            assert summary["empty_results"] < summary["operations"], summary  # searches find the data
    assert results["memory"]["rss_end_mb"] > 0
    assert {"ingest_vs_copy", "read_vs_ceiling"} <= results["ratios"].keys() if postgres else True
    assert {t["target"] for t in results["targets"]} >= {"ingest", "memory flat under mixed load"}
    text = report.table(results)
    assert "ingest: transaction bundle per patient" in text and "targets (issue 5)" in text
    assert "ingest at FHIR_VALIDATION_LEVEL=full" in text and "ingest_full_vs_standard" in results["ratios"]
    assert "lastn_vs_plain_search_p95" in results["ratios"]
    path = report.write_json(results, tmp_path, "smoke")
    assert path.exists() and path.stat().st_size > 0

    # The consent workload's set-up: a Consent on every patient, all gone again afterwards.
    from fhir_api.store.models import Resource

    remove = workloads.add_consents(target, catalog)
    assert Resource.objects.filter(resource_type="Consent", deleted=False).count() == 2
    remove()
    assert Resource.objects.filter(resource_type="Consent", deleted=False).count() == 0

    # A run without the read group (`--only count`) has no read workloads to take turns.
    counted = run_workloads(target, catalog, Config(duration=0.3, warmup=0.0, seed=7, only=frozenset({"count"})))
    assert {w["group"] for w in counted["workloads"]} == {"count"}


def test_a_workload_measured_in_turns_reports_its_median_turn():
    def turn(requests: int, p95: float) -> Result:
        return Result("read", 16, seconds=2.0, requests=requests, extra={
            "p50_ms": 1.0, "p95_ms": p95, "p99_ms": 9.0, "mean_ms": 2.0, "max_ms": p95 * 2, "generator": "wrk"})

    # One turn that a slow spell of the machine halved, among four alike.
    turns = [turn(2000, 5.0), turn(2100, 6.0), turn(1000, 30.0), turn(1900, 4.0), turn(2000, 5.0)]
    out: list = []
    summary = record(out, "read", merged(turns))
    assert summary["turns"] == [1000.0, 1050.0, 500.0, 950.0, 1000.0]
    assert summary["throughput"] == 1000.0  # the median turn, not the mean the slow turn drags down
    assert summary["throughput_over_turns"] == 900.0  # 9,000 requests in 10 s
    assert summary["requests"] == 9000 and summary["seconds"] == 10.0
    assert summary["p95_ms"] == 5.0 and summary["max_ms"] == 60.0
    assert out == [summary]


def test_issue_9_compares_the_audited_token_read_with_auth_and_audit_off():
    def reads(group: str, rate: float) -> dict:
        return {"group": group, "name": group, "concurrency": 16, "throughput": rate, "requests": 100,
                "operations": 100, "errors": 0, "p50_ms": 5.0, "p95_ms": 8.0, "p99_ms": 10.0}

    results = {"workloads": [reads("read", 900.0), reads("read-unaudited", 1000.0), reads("read-token", 800.0),
                             reads("read-token-consent", 600.0)]}
    results["ratios"] = report.ratios(results)
    assert results["ratios"]["read_audited_vs_unaudited"] == {"16": 0.8}
    assert results["ratios"]["read_consent_vs_token"] == {"16": 0.75}
    goal = next(t for t in report.targets(results) if "issue 9" in t["target"])
    assert goal["measured"] == 0.8 and goal["met"] is True
    assert "token read with a Consent on every patient / without: 16 clients 75%" in report.table(results)
