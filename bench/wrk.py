"""Read-by-id load from `wrk` (Debian package `wrk`), a C load generator.

The Python clients of bench.load need about as much CPU per request as a minimal WSGI app:
on a 2-core machine they saturate the cores before the ceiling app does and flatter the
slower server. wrk costs a fraction of that, so the read workloads use it when it is
installed (`apt-get install wrk`) and fall back to the Python clients with a warning.

Each connection walks the same list of paths (Patient and Observation ids of the catalog,
shuffled with the run's seed) from its own offset; a Lua `done` hook prints the figures as
one JSON line.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.load import Result, Target

_SCRIPT = r"""
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local headers = %(headers)s
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
function init(args)
  index = offset %% #paths
end
function request()
  index = index %% #paths + 1
  return wrk.format("GET", paths[index], headers)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "micros": %%d, "status_errors": %%d, "socket_errors": %%d, ' ..
    '"p50": %%d, "p95": %%d, "p99": %%d, "mean": %%f, "max": %%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
"""


def available() -> str | None:
    return shutil.which("wrk")


def _lua_table(headers: dict[str, str]) -> str:
    items = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    return "{" + items + "}"


def read(
    target: Target, name: str, relative_paths: list[str], *, clients: int, duration: float, warmup: float,
    seed: int = 0,
) -> Result:
    """Closed-loop GETs of `relative_paths` by `clients` connections for `duration` seconds."""
    paths = [target.path(p) for p in relative_paths]
    random.Random(seed).shuffle(paths)
    headers = {"Accept": "application/fhir+json", **target.headers}
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        path_file = Path(folder) / "paths.txt"
        path_file.write_text("\n".join(paths) + "\n")
        script = Path(folder) / "read.lua"
        script.write_text(_SCRIPT % {"paths": path_file, "headers": _lua_table(headers)})
        if warmup > 0:
            _run(target, script, clients, warmup)
        figures = _run(target, script, clients, duration)
    seconds = figures["micros"] / 1e6
    errors = figures["status_errors"] + figures["socket_errors"]
    return Result(
        name, clients, seconds=seconds, requests=figures["requests"] - figures["status_errors"], errors=errors,
        operations=figures["requests"],
        extra={
            "p50_ms": round(figures["p50"] / 1000, 2), "p95_ms": round(figures["p95"] / 1000, 2),
            "p99_ms": round(figures["p99"] / 1000, 2), "mean_ms": round(figures["mean"] / 1000, 2),
            "max_ms": round(figures["max"] / 1000, 2), "generator": "wrk",
        },
    )


def _run(target: Target, script: Path, clients: int, seconds: float) -> dict:
    # One wrk thread per core at most: wrk shares the machine with the server.
    threads = max(1, min(clients, 2))
    command = [
        "wrk", "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(seconds))}s", "--timeout", "30s",
        "-s", str(script), f"{target.scheme}://{target.host}:{target.port}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no figures: {done.stdout[-500:]} {done.stderr[-500:]}")
    return json.loads(lines[-1])
