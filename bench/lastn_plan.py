"""`python -m bench.lastn_plan`: the PostgreSQL plan of `Observation/$lastn`'s one statement.

Run it on the database a benchmark run loaded (e.g. `--patients 1000`): it builds the statement
the server runs for `Observation/$lastn?patient=X&category=vital-signs&max=3` (the patient with
the most Observations unless --patient is given) and prints `EXPLAIN (ANALYZE, BUFFERS)` of it,
so one can see that it is a single statement over the index tables -- no query per code -- and
which indexes it uses.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lastn_plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=not os.environ.get("DATABASE_URL"))
    parser.add_argument("--patient", help="the Patient's id (default: the one with the most Observations)")
    parser.add_argument("--category", default="vital-signs")
    parser.add_argument("--max", default="3")
    parser.add_argument("--calls", type=int, default=200,
                        help="in-process $lastn calls timed after the plan, each for a random patient (0: none)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs in one connection; the last is printed (the first warms caches, as a server's do)")
    args = parser.parse_args(argv)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirproject.settings")
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Count

    from fhir_search import lastn
    from fhir_search.models import ReferenceIndex

    if connection.vendor != "postgresql":
        print("the plan is PostgreSQL's: give a postgres:// database URL", file=sys.stderr)
        return 2
    patient = args.patient
    if patient is None:
        busiest = (ReferenceIndex.objects.filter(resource_type="Observation", code="subject", target_type="Patient")
                   .values("target_id").annotate(n=Count("id")).order_by("-n").first())
        if busiest is None:
            print("no Observation has a Patient subject in this database", file=sys.stderr)
            return 1
        patient = busiest["target_id"]
    params = [("patient", patient), ("category", args.category), ("max", args.max)]
    _, ranked = lastn.latest_query(params, lastn.parse_max([args.max]), base="http://bench/fhir")
    print(f"-- Observation/$lastn?patient={patient}&category={args.category}&max={args.max}")
    # QuerySet.explain() puts EXPLAIN inside the subquery Django wraps a window filter in:
    # explain the whole compiled statement instead.
    sql, sql_params = ranked.query.get_compiler(connection=connection).as_sql()
    with connection.cursor() as cursor:
        for _ in range(max(1, args.repeat)):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, sql_params)
            plan = [row[0] for row in cursor.fetchall()]
        print("\n".join(plan))
    if args.calls:
        print(in_process_timing(args, ReferenceIndex))
    return 0


def in_process_timing(args: argparse.Namespace, reference_index) -> str:
    """$lastn's own cost without HTTP: wall time, and this process's CPU time (on a busy
    machine wall time waits for a core; CPU time is what the request itself costs here)."""
    import random
    import time

    from fhir_search import lastn

    patients = list(reference_index.objects.filter(resource_type="Observation", code="subject", target_type="Patient")
                    .values_list("target_id", flat=True).distinct()[:5000])
    rng = random.Random(42)
    walls, cpus, found = [], [], 0
    for i in range(args.calls + 10):
        params = [("patient", rng.choice(patients)), ("category", args.category), ("max", args.max)]
        wall, cpu = time.perf_counter(), time.thread_time()
        bundle = lastn.lastn_bundle(base="http://bench/fhir", params=params)
        if i >= 10:  # the first calls load the search registry
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.thread_time() - cpu) * 1000)
            found += len(bundle.get("entry", ()))

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return (f"-- {args.calls} in-process calls over {len(patients)} patients, {found / args.calls:.1f} entries each: "
            f"wall p50 {pct(walls, 50):.1f} ms p95 {pct(walls, 95):.1f} ms; "
            f"CPU of this process p50 {pct(cpus, 50):.1f} ms p95 {pct(cpus, 95):.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
