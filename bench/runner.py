"""The timed workloads against a target that already holds the data (for __main__ and the smoke test)."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from bench import workloads, wrk
from bench.load import Result, Target
from bench.server import RssSampler, memory_report
from bench.workloads import Catalog


@dataclass
class Config:
    duration: float = 10.0  # seconds measured per workload
    warmup: float = 1.0  # seconds run before measuring starts
    read_clients: tuple[int, ...] = (1, 4, 16)
    search_clients: int = 4
    count_clients: int = 1
    lastn_clients: int = 1  # $lastn is a latency target: one client, no queueing behind others
    everything_clients: int = 4
    mixed_clients: int = 4
    mixed_seconds: float = 20.0  # the memory phase (--soak)
    long_chart: int = 500  # resources of the patient whose $everything is timed alone (0: none)
    seed: int = 42
    # The read workloads that are compared as ratios (read, without auth and audit, with a token,
    # the ceiling) take turns in this many rounds per concurrency, so a slow spell of a shared
    # machine falls on all of them alike rather than on whichever ran then.
    rounds: int = 5
    only: frozenset[str] | None = None  # groups: read, consent, ceiling, search, count, lastn, everything, mixed, levels

    def wants(self, group: str) -> bool:
        return self.only is None or group in self.only


def log_line(summary: dict[str, Any]) -> None:
    p = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(
        f"  {summary['name'][:58]:58} c={summary['concurrency']:<3} {summary['throughput']:>8.1f}/s "
        f"p50 {p(summary['p50_ms'])} p95 {p(summary['p95_ms'])} p99 {p(summary['p99_ms'])} ms"
        f"{'  errors ' + str(summary['errors']) if summary['errors'] else ''}",
        file=sys.stderr,
        flush=True,
    )


def merged(turns: list[Result]) -> Result:
    """One workload measured in turns (its throughput is the median turn's, see record; the
    JSON also keeps requests over seconds of all turns, throughput_over_turns); wrk's latency
    percentiles (it reports no single latencies) the median of the turns', the Python clients'
    from all their latencies."""
    first = turns[0]
    out = Result(first.name, first.concurrency, seconds=sum(t.seconds for t in turns),
                 requests=sum(t.requests for t in turns), errors=sum(t.errors for t in turns),
                 operations=sum(t.operations for t in turns),
                 latencies_ms=[ms for t in turns for ms in t.latencies_ms],
                 error_samples=[e for t in turns for e in t.error_samples][:5], extra=dict(first.extra))
    for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms"):
        if key in first.extra:
            out.extra[key] = statistics.median(t.extra[key] for t in turns)
    if "max_ms" in first.extra:
        out.extra["max_ms"] = max(t.extra["max_ms"] for t in turns)
    if len(turns) > 1:
        out.extra["turns"] = [round(t.requests / t.seconds, 1) if t.seconds else 0.0 for t in turns]
    return out


def record(out: list[dict[str, Any]], group: str, result: Result) -> dict[str, Any]:
    summary = {"group": group, **result.summary()}
    if summary.get("turns"):
        # The median turn: one turn that a slow spell of the machine halved moves it little.
        summary["throughput_over_turns"] = summary["throughput"]
        summary["throughput"] = round(statistics.median(summary["turns"]), 1)
    out.append(summary)
    log_line(summary)
    return summary


def run_workloads(
    target: Target,
    catalog: Catalog,
    config: Config,
    *,
    ceiling: Target | None = None,
    authenticated: Target | None = None,
    unaudited: Target | None = None,
    consents: Callable[[], Callable[[], None]] | None = None,
    worker_pids: Callable[[], list[int]] | None = None,
) -> dict[str, Any]:
    """Workloads 2-5 and the mixed/memory phase; returns {"workloads", "memory", "notes"}.

    `unaudited`: a server with auth and the audit trail off (FHIR_AUDIT=false), the baseline of
    issue 9's audited read. `consents`: puts a Consent on every patient and returns what takes
    them away again; the token read is then measured once more (group read-token-consent)."""
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    memory: dict[str, Any] | None = None
    timing = {"duration": config.duration, "warmup": config.warmup}

    read = workloads.read_operation(catalog)
    generator = wrk.available()
    if generator is None and config.wants("read"):
        notes.append("wrk not found (apt-get install wrk): read workloads used the Python clients, "
                     "which flatter the slower server on a small machine")
    def read_once(where: Target, name: str, clients: int, seconds: float, warmup: float) -> Result:
        if generator:
            return wrk.read(where, name, workloads.read_paths(catalog, config.seed), clients=clients,
                            seed=config.seed, duration=seconds, warmup=warmup)
        return workloads.run(where, name, read, clients=clients, seed=config.seed, duration=seconds, warmup=warmup)

    def reads(group: str, where: Target, name: str) -> None:
        for clients in config.read_clients:
            record(out, group, read_once(where, name, clients, config.duration, config.warmup))

    compared = [
        (group, where, name)
        for wanted, group, where, name in (
            (config.wants("read"), "read", target, "read Patient|Observation/{id}"),
            # The baseline of issue 9: auth off and the audit trail off (FHIR_AUDIT=false).
            (config.wants("read"), "read-unaudited", unaudited, "read by id, auth and audit trail off"),
            # The same reads with FHIR_AUTH_REQUIRED on and a valid bearer token (issue #8: the
            # token check must not dominate a read), each audited (an AuditEvent per read).
            (config.wants("read"), "read-token", authenticated, "read by id with a bearer token"),
            (config.wants("ceiling"), "ceiling-read", ceiling, "ceiling: minimal WSGI read by id"),
        )
        if wanted and where is not None
    ]
    rounds = max(1, min(config.rounds, int(config.duration)))  # wrk measures whole seconds
    for clients in config.read_clients if compared else ():
        turns: dict[str, list[Result]] = {group: [] for group, _, _ in compared}
        for turn in range(rounds):
            shift = turn % len(compared)  # and in a rotating order: none is always first after a pause
            for group, where, name in compared[shift:] + compared[:shift]:
                turns[group].append(read_once(where, name, clients, config.duration / rounds,
                                              config.warmup if turn == 0 else 0))
        for group, _, _ in compared:
            record(out, group, merged(turns[group]))
    if config.wants("consent") and authenticated is not None and consents is not None:
        remove = consents()
        try:
            workloads.warm_up(authenticated, clients=4, seconds=max(1.0, config.warmup))
            reads("read-token-consent", authenticated, "read by id with a token, a Consent on every patient")
        finally:
            remove()
    for group, operations, clients in (
        ("search", workloads.search_operations, config.search_clients),
        ("count", workloads.count_operations, config.count_clients),
        ("lastn", workloads.lastn_operations, config.lastn_clients),
    ):
        if config.wants(group):
            for name, operation in operations(catalog):
                record(
                    out,
                    group,
                    workloads.run(target, name, operation, clients=clients, seed=config.seed, **timing),
                )
    if config.wants("everything"):
        path = workloads.everything_path(catalog)
        status, body = workloads.probe(target, path)
        if status == 200:
            record(
                out,
                "everything",
                workloads.run(
                    target,
                    "Patient/{median}/$everything",
                    workloads.everything_operation(path),
                    clients=config.everything_clients,
                    seed=config.seed,
                    **timing,
                ),
            )
            if config.long_chart:
                # Issue 14: a patient with 500 resources, one client (a latency target).
                chart = workloads.large_chart(target, config.seed, config.long_chart)
                # (its size is in the note: the resources the answers held)
                result = workloads.run(target, f"Patient/{{chart of {config.long_chart}+}}/$everything",
                                       workloads.everything_operation(f"Patient/{chart}/$everything"),
                                       clients=1, seed=config.seed, **timing)
                record(out, "everything-long", result)
        else:
            notes.append(f"$everything skipped: GET {path} answered {status} ({body[:120]})")
    if config.wants("mixed"):
        mixed = workloads.mixed_operation(catalog)
        pids = worker_pids() if worker_pids else []
        name = "mixed: reads 55% / searches 40% / counts 5%"
        # twice a second on a real run, often enough for a few samples on a smoke run
        sampler = RssSampler(pids, interval=min(0.5, max(0.05, config.mixed_seconds / 20))) if pids else None
        with sampler or nullcontext():
            result = workloads.run(
                target,
                name,
                mixed,
                clients=config.mixed_clients,
                duration=config.mixed_seconds,
                warmup=config.warmup,
                seed=config.seed,
            )
        if sampler is not None:
            # the first quarter of the phase is warm-up for caches and connection pools
            memory = memory_report(sampler.samples, config.warmup + config.mixed_seconds / 4, result.requests)
        else:
            notes.append("memory not sampled: the server's worker processes are not known (--url)")
        record(out, "mixed", result)
    return {"workloads": out, "memory": memory, "notes": notes}
