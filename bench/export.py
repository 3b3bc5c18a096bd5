"""`python -m bench.export`: the Bulk Data `$export` workload (resources/s, peak worker memory).

Loads generated patients (bench.generate, through `manage.py load`) into a fresh PostgreSQL
database, then runs system-level exports of different sizes, each in a fresh job worker
process (`manage.py run_jobs --once`, what `make worker` runs without a broker), and reports
for each: resources exported, seconds the job ran (the job row's start to end), resources/s,
and the worker's peak RSS (VmHWM). Memory is flat when the peak does not grow with the size
of the export (issue 11: within 50 MB from 10,000 to 1,000,000 resources). The ceiling, in
the same run: PostgreSQL's COPY of the same rows into a file (no Python per row); on a busy
machine compare the ratio to it, not the absolute figures.

    python -m bench.export --patients 1000 [--database-url postgres://...] [--skip-load]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from bench import generate
from bench.server import ROOT, migrate, recreate_database

RESULTS = ROOT / "bench" / "results"
DEFAULT_URL = "postgres://root@127.0.0.1:5432/fhir_bench_export"
# (name, kick-off query): a small export and the whole store.
CASES = (("small: Patient,Condition", "_type=Patient,Condition"), ("everything", ""))


def _env(url: str, export_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "CELERY_", "BULK_"))}
    env.update({"DATABASE_URL": url, "FHIR_JOBS": "database", "FHIR_AUTH_REQUIRED": "false",
                "BULK_EXPORT_DIR": export_dir, "DJANGO_SETTINGS_MODULE": "fhirproject.settings"})
    return env


def load(url: str, patients: int, seed: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        out = Path(folder)
        (out / "hospitalInformation0.json").write_bytes(orjson.dumps(generate.providers_bundle(seed)))
        for index, bundle in enumerate(generate.patient_bundles(seed, patients)):
            (out / f"patient-{index:06d}.json").write_bytes(orjson.dumps(bundle))
        started = time.monotonic()
        subprocess.run([sys.executable, "manage.py", "load", folder, "--workers", "2", "--no-progress"],
                       cwd=ROOT, env=_env(url, folder), check=True)
        return time.monotonic() - started


def _peak_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_case(url: str, export_dir: str, query: str) -> dict[str, Any]:
    """Kick an export off (the real kick-off code), then run it in a fresh worker process."""
    kick = (
        "import django;django.setup()\n"
        "from django.test import Client\n"
        f"r=Client().get('/fhir/$export?{query}', HTTP_PREFER='respond-async')\n"
        "assert r.status_code==202, r.content\n"
        "print(r['Content-Location'].rsplit('/',1)[1])\n"
    )
    env = _env(url, export_dir)
    job_id = subprocess.run([sys.executable, "-c", kick], cwd=ROOT, env=env, check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    worker = subprocess.Popen([sys.executable, "-c", (
        "import django, resource, sys;django.setup()\n"
        "from fhir_api.store import job_runner\n"
        "job_runner.run_pending()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = worker.communicate()
    peak_kb = int(out.strip().splitlines()[-1])
    report = (
        "import django, json;django.setup()\n"
        "from fhir_api.store.models import Job\n"
        f"j=Job.objects.get(id={job_id!r})\n"
        "print(json.dumps({'status': j.status, 'error': j.error, 'seconds': (j.finished_at-j.started_at).total_seconds(),"
        " 'resources': sum(o['count'] for o in (j.result or {}).get('output', []))}))\n"
    )
    row = json.loads(subprocess.run([sys.executable, "-c", report], cwd=ROOT, env=env, check=True,
                                    capture_output=True, text=True).stdout.strip().splitlines()[-1])
    if row["status"] != "completed":
        raise RuntimeError(f"export {job_id} {row['status']}: {row['error']}")
    row["resources_per_second"] = round(row["resources"] / max(row["seconds"], 1e-6))
    row["peak_worker_rss_mb"] = round(peak_kb / 1024, 1)
    return row


CEILING_SQL = ("COPY (SELECT data FROM fhir_api_resource WHERE NOT deleted AND resource_type <> 'AuditEvent' "
               "ORDER BY id) TO STDOUT")


def ceiling(url: str, export_dir: str) -> dict[str, Any]:
    """What no export can beat on this machine at this moment: PostgreSQL's COPY of the same
    rows' JSON (the whole store, in row id order) into one local file, with no Python per row."""
    import psycopg

    rows, started = 0, time.monotonic()
    with psycopg.connect(url) as conn, open(Path(export_dir) / "ceiling.out", "wb") as out:
        with conn.cursor().copy(CEILING_SQL) as copy:
            for block in copy:
                out.write(block)
        rows = conn.execute("SELECT count(*) FROM fhir_api_resource WHERE NOT deleted AND "
                            "resource_type <> 'AuditEvent'").fetchone()[0]
    seconds = time.monotonic() - started
    return {"resources": rows, "seconds": round(seconds, 2),
            "resources_per_second": round(rows / max(seconds, 1e-6))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--skip-load", action="store_true", help="export what the database holds already")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"patients": args.patients, "seed": args.seed,
                              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if not args.skip_load:
        recreate_database(args.database_url)
        migrate(args.database_url)
        result["load_seconds"] = round(load(args.database_url, args.patients, args.seed), 1)
        print(f"loaded {args.patients} patients in {result['load_seconds']} s", file=sys.stderr)
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-export-files-") as export_dir:
        for name, query in CASES:
            row = {"case": name, **run_case(args.database_url, export_dir, query)}
            cases.append(row)
            print(f"{name:28} {row['resources']:>9} resources {row['seconds']:>7.2f} s "
                  f"{row['resources_per_second']:>8} resources/s  peak worker RSS {row['peak_worker_rss_mb']} MB")
        result["ceiling"] = ceiling(args.database_url, export_dir)
    result["cases"] = cases
    whole = cases[-1]
    top = result["ceiling"]["resources_per_second"]
    result["ratio_to_ceiling"] = round(whole["resources_per_second"] / top, 2)
    print(f"ceiling (COPY of the same rows to a file): {top} resources/s; "
          f"the whole export ran at {result['ratio_to_ceiling']} of it")
    result["peak_rss_growth_mb"] = round(cases[-1]["peak_worker_rss_mb"] - cases[0]["peak_worker_rss_mb"], 1)
    print(f"peak worker RSS growth from the small to the whole export: {result['peak_rss_growth_mb']} MB")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"export-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
