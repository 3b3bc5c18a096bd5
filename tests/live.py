"""Real servers for the long (`slow`) tests: gunicorn as `make serve` starts it, and a
PostgreSQL instance of the test's own (initdb into a temporary folder, its own port).

Ports come from TEST_SERVER_PORTS (gunicorn) and TEST_POSTGRES_PORTS (PostgreSQL), ranges
like 18200-18299, so parallel runs on a shared machine stay apart.
"""
from __future__ import annotations

import glob
import http.client
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port(variable: str, default: str) -> int:
    low, high = (int(x) for x in os.environ.get(variable, default).split("-"))
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {variable}={low}-{high}")


def database_url(settings_dict: dict) -> str:
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def request(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 10,
            headers: dict[str, str] | None = None, source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request; `source` is the client address to send from (another loopback address such
    as 127.0.0.2 is another client to a server that tells clients apart by address)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                            source_address=(source, 0) if source else None)
    try:
        all_headers = {"Accept": "application/fhir+json", **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/fhir+json")
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    def workers(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]


@contextmanager
def serve(database: str, **env: str) -> Iterator[Server]:
    """gunicorn with gunicorn.conf.py and the production settings, as `make serve` runs it."""
    port = free_port("TEST_SERVER_PORTS", "18200-18299")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "DJANGO_", "GUNICORN_"))}
    environment.update({
        "DATABASE_URL": database, "HOST": "127.0.0.1", "PORT": str(port),
        "DJANGO_REQUIRE_SECRET_KEY": "true", "DJANGO_SECRET_KEY": secrets.token_hex(32),
        "FHIR_AUTH_REQUIRED": "false", "DJANGO_SETTINGS_MODULE": "fhirproject.settings",
        **env,
    })
    log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "fhirproject.wsgi:application", "--config", "gunicorn.conf.py"],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(process, port, log)
    try:
        wait_until(process, log, lambda: answers(port, "/fhir/metadata"), "gunicorn", timeout=90)
        yield server
    finally:
        stop(process)
        log.unlink(missing_ok=True)


def answers(port: int, path: str) -> bool:
    """Whether a server on `port` answers `path` with 200 (not at all while it starts)."""
    try:
        return request(port, "GET", path, timeout=5)[0] == 200
    except OSError:
        return False


def wait_until(process: subprocess.Popen, log: Path, ready: Callable[[], bool], what: str,
               timeout: float = 60, every: float = 0.3) -> None:
    """Wait for a process started by a test to be `ready`; its log tail if it exits or never is."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(every)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, and its children: TERM, then KILL after 20 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# -- a PostgreSQL instance of the test's own ---------------------------------------------------


def _postgres_bin() -> Path | None:
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:  # a link in /usr/local/bin: the folder of the real one has the other tools
            return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@dataclass
class Postgres:
    bin: Path
    data: Path
    port: int
    user: str | None  # the OS user the server runs as (root may not run PostgreSQL)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], user=self.user, capture_output=True,
                              text=True, check=check, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data / "db"), "-l", str(self.data / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data / "db"), "-m", mode, "-w", "stop", check=False)

    def url(self, name: str) -> str:
        return f"postgres://fhir@127.0.0.1:{self.port}/{name}"


def _own_folder(prefix: str) -> tuple[Path, str | None]:
    """A temporary folder for a PostgreSQL data directory, and the OS user to run the server as."""
    user = None
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        user = "postgres"
        os.chown(folder, account.pw_uid, account.pw_gid)
    return folder, user


@contextmanager
def own_postgres() -> Iterator[Postgres]:
    """initdb into a temporary folder, start on a free port, stop and remove at the end.

    initdb's defaults make it a primary that a streaming replica can follow (`standby_of`):
    wal_level=replica, WAL senders, and replication connections trusted from 127.0.0.1.
    """
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    folder, user = _own_folder("fhir-pg-")
    pg = Postgres(binaries, folder, free_port("TEST_POSTGRES_PORTS", "15500-15599"), user)
    try:
        pg._run("initdb", "-D", str(folder / "db"), "-A", "trust", "-U", "fhir", "-E", "UTF8", "--no-sync")
        pg.start()
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def standby_of(primary: Postgres) -> Iterator[Postgres]:
    """A streaming replica of `primary`: `pg_basebackup -R` (a copy that starts as a standby
    following the primary) into a temporary folder, started on another free port."""
    folder, user = _own_folder("fhir-pg-standby-")
    standby = Postgres(primary.bin, folder, free_port("TEST_POSTGRES_PORTS", "15500-15599"), user)
    try:
        standby._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "fhir",
                     "-D", str(folder / "db"), "-R", "-X", "stream", "-c", "fast", "--no-sync")
        standby.start()
        yield standby
    finally:
        standby.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Bouncer:
    port: int

    def url(self, name: str) -> str:
        return f"postgres://fhir@127.0.0.1:{self.port}/{name}"


@contextmanager
def pgbouncer(pg: Postgres, database: str, pool_mode: str = "transaction") -> Iterator[Bouncer]:
    """PgBouncer (the Debian package) in front of `pg`'s `database`, on a free port, with its
    own configuration in a temporary folder; skipped where it is not installed."""
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    folder, user = _own_folder("fhir-pgbouncer-")
    port = free_port("TEST_POSTGRES_PORTS", "15500-15599")
    (folder / "users.txt").write_text('"fhir" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{database} = host=127.0.0.1 port={pg.port} dbname={database} user=fhir\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\npool_mode = {pool_mode}\n"
        "max_client_conn = 500\ndefault_pool_size = 10\n"
        f"logfile = {folder / 'log'}\npidfile = {folder / 'pid'}\n"
    )
    (folder / "log").write_text("")
    for path in folder.iterdir():
        if user:
            account = pwd.getpwnam(user)
            os.chown(path, account.pw_uid, account.pw_gid)
    log = folder / "log"
    process = subprocess.Popen([binary, str(folder / "pgbouncer.ini")], user=user, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(process, log, up, "pgbouncer", timeout=30, every=0.1)
        yield Bouncer(port)
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)
