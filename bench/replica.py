"""`python -m bench --replica` (`make bench BENCH_ARGS=--replica`): how reads spread over a
primary and a streaming read replica (README "Running more than one machine").

The benchmark starts a PostgreSQL primary of its own and a standby copied from it with
`pg_basebackup -R` (tests/live.py; ports from TEST_POSTGRES_PORTS, data in temporary folders),
serves with DATABASE_URL=primary and DATABASE_REPLICA_URLS=standby (read-your-writes pins in
Redis: REDIS_URL, default redis://127.0.0.1:6379/0), loads generated patients, then measures
the read workloads twice: on that server, and on a server of the same data without the replica.
Where the reading happened comes from each database's own counters (pg_stat_database:
transactions, and rows fetched by index scans and returned by sequential scans), so the report
does not rely on the server's word. Everything runs on one machine: the replica competes for
the same cores, so the throughput ratio shows the cost of routing, not the gain of a second
machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

import psycopg

from bench import generate, report, workloads, wrk
from bench.load import Result, Target
from bench.server import Gunicorn, ServeSettings, migrate, server_env
from bench.workloads import Catalog

COUNTERS = ("xact_commit", "tup_fetched", "tup_returned")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def counters(url: str) -> dict[str, int]:
    """The counters of the server's database, read from the `postgres` database so that reading
    them does not count."""
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        row = conn.execute(f"SELECT {', '.join(COUNTERS)} FROM pg_stat_database WHERE datname = %s", [name]).fetchone()
    return dict(zip(COUNTERS, (int(v) for v in row), strict=True))


def settled_counters(url: str, timeout: float = 15.0) -> dict[str, int]:
    """The counters once the server's pooled connections have reported theirs: PostgreSQL
    publishes a backend's statistics at most once a second, and an idle one's within ~10 s."""
    last = counters(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = counters(url)
        if now == last:
            return now
        last = now
    return last


def caught_up(primary: str, standby: str, timeout: float = 120.0) -> None:
    with psycopg.connect(primary, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(standby, autocommit=True) as conn:
        while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not catch up with the primary")
            time.sleep(0.2)


def measure(target: Target, catalog: Catalog, urls: dict[str, str], args: argparse.Namespace,
            replica: bool) -> list[dict[str, Any]]:
    """The read workloads on `target`, each with the share of the reading done by each database."""
    timing = {"duration": args.duration, "warmup": args.warmup}
    phases: list[tuple[str, Any]] = []
    if wrk.available():
        phases.append(("read Patient|Observation/{id}", lambda: wrk.read(
            target, "read by id", workloads.read_paths(catalog, args.seed), clients=16, seed=args.seed, **timing)))
    else:
        phases.append(("read Patient|Observation/{id}", lambda: workloads.run(
            target, "read by id", workloads.read_operation(catalog), clients=16, seed=args.seed, **timing)))
    phases.append(("mixed: reads 55% / searches 40% / counts 5%", lambda: workloads.run(
        target, "mixed", workloads.mixed_operation(catalog), clients=4, seed=args.seed, **timing)))
    out = []
    for name, run in phases:
        before = {role: settled_counters(url) for role, url in urls.items()}
        result: Result = run()
        after = {role: settled_counters(url) for role, url in urls.items()}
        delta = {role: {k: after[role][k] - before[role][k] for k in COUNTERS} for role in urls}
        rows = {role: d["tup_fetched"] + d["tup_returned"] for role, d in delta.items()}
        xacts = {role: d["xact_commit"] for role, d in delta.items()}
        summary = result.summary()
        entry = {
            "name": name, "replica": replica, "throughput": summary["throughput"], "p95_ms": summary["p95_ms"],
            "errors": summary["errors"], "requests": summary["requests"], "counters": delta,
            "replica_share_rows": round(rows.get("standby", 0) / max(1, sum(rows.values())), 3),
            "replica_share_transactions": round(xacts.get("standby", 0) / max(1, sum(xacts.values())), 3),
        }
        log(f"  {'with' if replica else 'without'} replica  {name[:44]:44} {entry['throughput']:>8.1f}/s  "
            f"replica share: rows {entry['replica_share_rows']:.0%}, transactions "
            f"{entry['replica_share_transactions']:.0%}{'  errors ' + str(entry['errors']) if entry['errors'] else ''}")
        out.append(entry)
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| workload | without replica /s | with replica /s | ratio | rows read on the replica | "
             "transactions on the replica |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    plain = {w["name"]: w for w in results["without_replica"]}
    for w in results["with_replica"]:
        base = plain.get(w["name"], {})
        ratio = w["throughput"] / base["throughput"] if base.get("throughput") else None
        lines.append(f"| {w['name']} | {base.get('throughput', '-')} | {w['throughput']} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}'} | {w['replica_share_rows']:.0%} | "
                     f"{w['replica_share_transactions']:.0%} |")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: ServeSettings) -> int:
    from tests.live import own_postgres, standby_of  # the PostgreSQL instances the replica test uses

    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {"meta": {"started": stamp, "cpus": os.cpu_count(), "patients": args.patients,
                                        "duration": args.duration, "redis": redis_url.rsplit("@", 1)[-1],
                                        "gunicorn": {"workers": settings.workers, "threads": settings.threads}}}
    with own_postgres() as primary_pg:
        with psycopg.connect(primary_pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fhir")
        with standby_of(primary_pg) as standby_pg:
            primary, standby = primary_pg.url("fhir"), standby_pg.url("fhir")
            migrate(primary)
            base_env = {**server_env(primary), "REDIS_URL": redis_url, "FHIR_JOBS": "embedded"}
            log(f"loading {args.patients} patients through the server with the replica ...")
            with Gunicorn("fhirproject.wsgi:application", settings,
                          {**base_env, "DATABASE_REPLICA_URLS": standby}) as server:
                target = Target(server.url)
                workloads.warm_up(target, clients=2 * settings.workers, seconds=2.0)
                catalog = Catalog()
                workloads.ingest(target, [workloads.prepare(b) for b in generate.patient_bundles(args.seed, args.patients)],
                                 clients=2 * settings.workers, catalog=catalog,
                                 providers=workloads.prepare(generate.providers_bundle(args.seed)))
                with psycopg.connect(primary, autocommit=True) as conn:
                    conn.execute("ANALYZE")
                caught_up(primary, standby)
                # The loading client is pinned to the primary for DATABASE_REPLICA_PIN_SECONDS.
                time.sleep(float(os.environ.get("DATABASE_REPLICA_PIN_SECONDS", "5")) + 0.5)
                log("read workloads with the replica ...")
                results["with_replica"] = measure(target, catalog, {"primary": primary, "standby": standby},
                                                  args, replica=True)
            with Gunicorn("fhirproject.wsgi:application", settings, base_env) as server:
                target = Target(server.url)
                workloads.warm_up(target, clients=2 * settings.workers, seconds=2.0)
                log("the same without the replica ...")
                results["without_replica"] = measure(target, catalog, {"primary": primary, "standby": standby},
                                                     args, replica=False)
    path = report.write_json(results, args.results_dir, "replica-" + stamp)
    print(table(results))
    print(f"results: {path}")
    return 0
