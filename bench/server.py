"""The servers under test: a fresh PostgreSQL database, gunicorn processes, their memory.

The FHIR server and the ceiling app run under the same gunicorn command line (workers,
worker class, threads), the one `make serve` uses, so their figures compare like for like.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.load import Connection, Target

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/fhir_bench"


@dataclass(frozen=True)
class ServeSettings:
    """gunicorn's process model, from the same environment variables `make serve` reads."""

    workers: int
    worker_class: str
    threads: int

    @classmethod
    def from_env(cls) -> ServeSettings:
        return cls(
            workers=int(os.environ.get("WEB_CONCURRENCY", "2")),
            worker_class=os.environ.get("GUNICORN_WORKER_CLASS", "gthread"),
            threads=int(os.environ.get("GUNICORN_THREADS", "32")),
        )

    def arguments(self) -> list[str]:
        # as `make serve` passes them (gunicorn itself turns sync into gthread when threads > 1)
        return [
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
        ]


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port: from BENCH_PORTS (e.g. "8300-8399") when set, else any the system gives."""
    ports = os.environ.get("BENCH_PORTS", "")
    low, _, high = ports.partition("-")
    candidates = range(int(low), int(high or low) + 1) if low.strip() else [0]
    for port in candidates:
        if port and port in _GIVEN:
            continue  # given to an earlier server of this run that may not listen yet
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _GIVEN.add(s.getsockname()[1])
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in BENCH_PORTS={ports}")


# -- the database --------------------------------------------------------------------------------


def _maintenance_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError(f"DATABASE_URL {url!r} names no database")
    return urlunsplit(parts._replace(path="/postgres")), name


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database: every full run starts from nothing."""
    maintenance, name = _maintenance_url(url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_exists(url: str) -> bool:
    maintenance, name = _maintenance_url(url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def server_env(database_url: str) -> dict[str, str]:
    """The production settings the server runs with (12-factor: all from the environment)."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "fhirproject.settings",
            "DJANGO_DEBUG": "false",
            "FHIR_AUTH_REQUIRED": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    )
    env.pop("FHIR_BASE_URL", None)
    # Production never runs on the development key (`make serve` refuses it).
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_hex(32))
    return env


def migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=server_env(database_url),
        check=True,
    )


# -- gunicorn ---------------------------------------------------------------------------------------


@dataclass
class Gunicorn:
    """A gunicorn master and its workers, started and stopped by the benchmark."""

    app: str  # "fhirproject.wsgi:application"
    settings: ServeSettings
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            self.app,
            "--bind",
            f"127.0.0.1:{self.port}",
            *self.settings.arguments(),
            "--keep-alive",
            "5",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ]

    def start(self, ready_path: str = "/fhir/metadata", timeout: float = 60.0) -> Gunicorn:
        log_dir = ROOT / "bench" / "results"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"gunicorn-{self.app.split('.')[0].split(':')[0]}.log"
        out = self.log.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        target = Target(self.url)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log}")
            try:
                connection = Connection(target, timeout=5)
                connection.request("GET", ready_path)
                connection.close()
                if len(self.worker_pids()) >= self.settings.workers:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log}")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        return children_of(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Gunicorn:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces: the fields after it start at the last ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the resident memory of some processes every `interval` seconds in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._stop.is_set():
            sample = {pid: kb for pid in self.pids if (kb := rss_kb(pid)) is not None}
            self.samples.append((time.perf_counter() - started, sample))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_report(samples: list[tuple[float, dict[int, int]]], skip_seconds: float, requests: int) -> dict:
    """Growth of the workers' RSS after the first `skip_seconds` (imports, caches and pools warm up)."""
    kept = [(t, s) for t, s in samples if t >= skip_seconds and s]
    if len(kept) < 2:
        kept = [(t, s) for t, s in samples if s]
    if len(kept) < 2:
        return {"note": "too few samples"}
    first_t, first = kept[0]
    last_t, last = kept[-1]
    totals = [(t, sum(s.values()) / 1024) for t, s in kept]
    # least-squares slope of the total, MB per minute
    n = len(totals)
    mean_t = sum(t for t, _ in totals) / n
    mean_m = sum(m for _, m in totals) / n
    var = sum((t - mean_t) ** 2 for t, _ in totals) or 1e-9
    slope = sum((t - mean_t) * (m - mean_m) for t, m in totals) / var * 60
    start_mb = sum(first.values()) / 1024
    end_mb = sum(last.values()) / 1024
    return {
        "workers": len(last),
        "seconds": round(last_t - first_t, 1),
        "rss_start_mb": round(start_mb, 1),
        "rss_end_mb": round(end_mb, 1),
        "rss_peak_mb": round(max(m for _, m in totals), 1),
        "growth_mb": round(end_mb - start_mb, 2),
        "growth_pct": round((end_mb - start_mb) / start_mb * 100, 2) if start_mb else None,
        "slope_mb_per_min": round(slope, 3),
        "requests": requests,
        "growth_kb_per_1k_requests": round((end_mb - start_mb) * 1024 / requests * 1000, 2)
        if requests
        else None,
        "per_worker_mb": {
            str(pid): [round(first.get(pid, 0) / 1024, 1), round(kb / 1024, 1)] for pid, kb in last.items()
        },
        "series": [[round(t, 1), round(m, 1)] for t, m in totals[:: max(1, len(totals) // 120)]],
    }
