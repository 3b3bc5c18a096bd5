"""`python -m bench` (`make bench`): the benchmark of issue 5, in one command.

Creates a fresh PostgreSQL database, starts the production server (gunicorn, the process
model of `make serve`), loads generated patients through transaction Bundles, runs the
workloads, measures the ceilings (raw COPY, a minimal WSGI read) in the same run, samples
the workers' memory under mixed load, prints a table and writes bench/results/<time>.json.
See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg

from bench import ceilings, generate, report, workloads
from bench.load import Target
from bench.runner import Config, run_workloads
from bench.server import (
    DEFAULT_DATABASE_URL,
    ROOT,
    Gunicorn,
    ServeSettings,
    database_exists,
    migrate,
    recreate_database,
    server_env,
)
from bench.token import authenticated_env, mint_token
from bench.workloads import Catalog

RESULTS = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--patients", type=int, default=None, help="patients to generate and load (default 100)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds measured per workload (default 10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5,
        help="turns the compared read workloads (read, auth and audit off, token, ceiling) take, in "
        "rotation, within --duration: a slow spell of the machine then falls on each alike (default 5)",
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds run before each measurement (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a minute or less")
    parser.add_argument(
        "--skip-ingest",
        action="store_true",
        help="reuse the data of an earlier run with the same --seed/--patients (no fresh database)",
    )
    parser.add_argument(
        "--url", help="an already running server's FHIR base, e.g. http://127.0.0.1:8000/fhir"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"PostgreSQL for the server and the ceilings (default $DATABASE_URL or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        help="seconds of mixed load while memory is sampled (default 2x --duration; 600 for the soak)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default $WEB_CONCURRENCY or 2)"
    )
    parser.add_argument(
        "--ingest-clients", type=int, default=None, help="parallel transactions (default 2x workers)"
    )
    parser.add_argument("--read-clients", default="1,4,16")
    parser.add_argument(
        "--only",
        default=None,
        help="comma list of groups: read,consent,ceiling,search,count,lastn,everything,mixed,levels (ingest "
        "always runs unless --skip-ingest)",
    )
    parser.add_argument(
        "--levels-patients",
        type=int,
        default=None,
        help="patients (another seed) ingested for the FHIR_VALIDATION_LEVEL full/standard ratio "
        "(default 5%% of --patients, at least 4)",
    )
    parser.add_argument("--no-ceilings", action="store_true", help="skip the COPY and minimal-WSGI ceilings")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--replica",
        action="store_true",
        help="only the read workloads, on a PostgreSQL primary and a streaming replica of the bench's own, "
        "with and without DATABASE_REPLICA_URLS: how reads spread over both (bench/replica.py)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.patients = args.patients if args.patients is not None else (5 if quick else 100)
    args.duration = args.duration if args.duration is not None else (1.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if quick else 1.0)
    args.levels_patients = args.levels_patients if args.levels_patients is not None else max(4, args.patients // 20)
    args.soak = args.soak if args.soak is not None else max(args.duration * 2, 2.0 if quick else 10.0)
    return args


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        return head.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _postgres_version(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        return None


def _analyze(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def dataset_summary(bundles: list[workloads.Prepared], seconds: float) -> dict[str, Any]:
    sizes = [b.entries for b in bundles]
    types = Counter(rtype for b in bundles for rtype, _ in b.facts)
    return {
        "bundles": len(bundles),
        "megabytes": round(sum(len(b.body) for b in bundles) / 1e6, 1),
        "entries": sum(sizes),
        "entries_per_bundle": {
            "min": min(sizes),
            "median": sorted(sizes)[len(sizes) // 2],
            "max": max(sizes),
        },
        "entries_by_type": dict(types.most_common()),
        "generated_in_s": round(seconds, 2),
    }


def validation_levels(args: argparse.Namespace, settings: ServeSettings, database_url: str,
                      clients: int) -> dict[str, Any]:
    """Ingest at FHIR_VALIDATION_LEVEL=standard and =full, by turns, on two servers of the run."""
    bundles = [workloads.prepare(b) for b in generate.patient_bundles(args.seed + 1, args.levels_patients)]
    log(f"validation levels: {len(bundles)} more patients (seed {args.seed + 1}), standard and full by turns ...")
    with ExitStack() as stack:
        targets = {}
        for level in ("standard", "full"):
            env = {**server_env(database_url), "FHIR_VALIDATION_LEVEL": level}
            server = stack.enter_context(Gunicorn("fhirproject.wsgi:application", settings, env))
            targets[level] = Target(server.url)
            workloads.warm_up(targets[level], clients=2 * settings.workers, seconds=max(2.0, args.warmup * 2))
        out = workloads.ingest_levels(targets, bundles, clients=clients, chunk=2 * clients)
    log(f"  standard {out['standard']['resources_per_s']} res/s, full {out['full']['resources_per_s']} res/s: "
        f"full/standard {out.get('full_vs_standard')}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = ServeSettings.from_env()
    if args.workers:
        settings = ServeSettings(args.workers, settings.worker_class, settings.threads)
    if args.replica:
        from bench import replica

        return replica.run(args, settings)
    database_url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database_url.startswith(("postgres://", "postgresql://")) and not args.url:
        print(
            "The benchmark runs against PostgreSQL: set DATABASE_URL=postgres://... (or --url)",
            file=sys.stderr,
        )
        return 2
    config = Config(
        duration=args.duration,
        warmup=args.warmup,
        seed=args.seed,
        mixed_seconds=args.soak,
        read_clients=tuple(int(c) for c in args.read_clients.split(",")),
        rounds=args.rounds,
        only=frozenset(args.only.split(",")) if args.only else None,
    )
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    db_name = database_url.rsplit("/", 1)[-1]
    catalog_path = args.results_dir / f"catalog-{db_name}-seed{args.seed}-p{args.patients}.json"
    ingest_clients = args.ingest_clients or 2 * settings.workers

    log(f"generating {args.patients} patients (seed {args.seed}) ...")
    started = time.perf_counter()
    bundles: list[workloads.Prepared] = []
    copy_source: list[tuple[str, str, str]] = []  # the COPY ceiling's rows, up to 100k distinct
    for bundle in generate.patient_bundles(args.seed, args.patients):
        bundles.append(workloads.prepare(bundle))  # bytes + small facts; the dicts are dropped
        if len(copy_source) < 100_000:
            copy_source += ceilings.copy_rows([bundle])
    providers = workloads.prepare(generate.providers_bundle(args.seed))
    # Everything kept from here on lives for the whole run: keep it out of the cyclic GC's
    # scans so collections do not pause the client threads while they measure.
    gc.collect()
    gc.freeze()
    results: dict[str, Any] = {
        "meta": {
            "started": stamp,
            "commit": _git_commit(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "postgresql": _postgres_version(database_url),
            "server": args.url or "gunicorn fhirproject.wsgi:application (started by the benchmark)",
            "gunicorn": {
                "workers": settings.workers,
                "worker_class": settings.worker_class,
                "threads": settings.threads,
            },
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        },
        "dataset": dataset_summary(bundles, time.perf_counter() - started),
        "ceilings": {},
        "notes": [],
    }
    log(
        f"  {results['dataset']['entries']} entries in {len(bundles)} bundles "
        f"(median {results['dataset']['entries_per_bundle']['median']} per bundle)"
    )

    with ExitStack() as stack:
        pids = None
        if args.url:
            target = Target(args.url)
        else:
            if args.skip_ingest:
                if not database_exists(database_url):
                    log(f"--skip-ingest: the database {db_name} does not exist; run once without it")
                    return 2
            else:
                log(f"creating a fresh database {db_name} ...")
                recreate_database(database_url)
            migrate(database_url)
            log(f"starting gunicorn ({' '.join(settings.arguments())}) ...")
            server = stack.enter_context(
                Gunicorn("fhirproject.wsgi:application", settings, server_env(database_url))
            )
            target = Target(server.url)
            pids = server.worker_pids

        # Each worker loads the R4 definitions and the search registry on its first requests
        # (a second or two of CPU); that is start-up, not ingest or read cost.
        warm = workloads.warm_up(
            target, clients=2 * settings.workers * max(settings.threads, 1), seconds=max(2.0, args.warmup * 2)
        )
        if warm.errors:
            log(f"  warm-up errors: {warm.error_samples[:2]}")

        if args.skip_ingest:
            if not catalog_path.exists():
                log(f"--skip-ingest: {catalog_path} is missing; run once without --skip-ingest")
                return 2
            catalog = Catalog.from_json(catalog_path.read_bytes())
            results["notes"].append(f"ingest skipped: reusing the data described by {catalog_path.name}")
        else:
            log(f"ingest: {len(bundles)} transaction bundles, {ingest_clients} clients ...")
            catalog = Catalog()
            result = workloads.ingest(
                target, bundles, clients=ingest_clients, catalog=catalog, providers=providers
            )
            results["ingest"] = {"group": "ingest", **result.summary()}
            results["ingest"]["name"] = "ingest: transaction bundle per patient"
            if result.errors:
                log(f"  {result.errors} bundles failed, e.g. {result.error_samples[:1]}")
            log(
                f"  {results['ingest']['resources_per_s']} resources/s "
                f"({results['ingest']['resources_created']} created in {result.seconds:.1f} s)"
            )
            if not catalog.patients:
                log("no patient was loaded: nothing to measure")
                print(report.table(results))
                return 1
            catalog.save(catalog_path)
            if _postgres_version(database_url):
                # Fresh tables have no planner statistics until autovacuum's next round (up to
                # a minute after a bulk load); without them PostgreSQL picks nested loops
                # that are 100x slower. Measure the steady state a server reaches by itself.
                _, seconds = workloads.timed(lambda: _analyze(database_url))
                results["notes"].append(
                    f"ANALYZE ran after the ingest ({seconds:.1f} s), as autovacuum would "
                    "within a minute of a bulk load"
                )

        ceiling_target = None
        if not args.no_ceilings and _postgres_version(database_url):
            log("ceiling: COPY of the same resources into a bare table ...")
            results["ceilings"]["copy"] = ceilings.copy_ceiling(database_url, copy_source)
            results["ceilings"]["copy_jsonb"] = ceilings.copy_ceiling(
                database_url, copy_source, column="jsonb"
            )
            log(
                f"  {results['ceilings']['copy']['resources_per_s']} resources/s "
                f"(jsonb: {results['ceilings']['copy_jsonb']['resources_per_s']})"
            )
            ceiling = stack.enter_context(
                Gunicorn("bench.ceiling_app:application", settings, server_env(database_url))
            )
            ceiling_target = Target(ceiling.url)
        elif not args.no_ceilings:
            results["notes"].append("ceilings skipped: PostgreSQL not reachable at the database URL")

        authenticated_target = unaudited_target = None
        if args.url is None and (config.wants("read") or config.wants("consent")):
            env = authenticated_env(server_env(database_url))
            token = mint_token(env)
            secured = stack.enter_context(Gunicorn("fhirproject.wsgi:application", settings, env))
            authenticated_target = Target(secured.url, {"Authorization": f"Bearer {token}"})
            workloads.warm_up(authenticated_target, clients=2 * settings.workers, seconds=max(2.0, args.warmup * 2))
        if args.url is None and config.wants("read"):
            # Issue 9's baseline: auth off and the audit trail off (FHIR_AUDIT=false, allowed
            # only with auth off), so the audited token read is compared with a read that
            # does neither.
            bare = stack.enter_context(Gunicorn("fhirproject.wsgi:application", settings,
                                                {**server_env(database_url), "FHIR_AUDIT": "false"}))
            unaudited_target = Target(bare.url)
            workloads.warm_up(unaudited_target, clients=2 * settings.workers, seconds=max(2.0, args.warmup * 2))

        log("workloads ...")
        measured = run_workloads(target, catalog, config, ceiling=ceiling_target,
                                 authenticated=authenticated_target, unaudited=unaudited_target,
                                 consents=lambda: workloads.add_consents(target, catalog), worker_pids=pids)
        if args.url is None and config.wants("levels"):
            results["ingest_levels"] = validation_levels(args, settings, database_url, ingest_clients)
    results["workloads"] = measured["workloads"]
    results["memory"] = measured["memory"]
    results["notes"] += measured["notes"]
    results["dataset"]["loaded"] = {
        "patients": len(catalog.patients),
        "ids_by_type": {t: len(v) for t, v in catalog.ids.items()},
    }
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    if args.patients < 100:
        results["notes"].append(
            f"{args.patients} patients: the search targets are defined on the 100-patient set"
        )
    path = report.write_json(results, args.results_dir, stamp)
    print(report.table(results))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
