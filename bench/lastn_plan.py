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
    print(ranked.explain(analyze=True, buffers=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
