"""Every setting is checked at start-up and a bad one stops the server with one clear line.

https://12factor.net/config -- settings come from the environment; a wrong value must fail
when the process starts (not as 500s later), and say which variable and why. The server's
own entry points are run as they are in production: `manage.py` (what `make run` and
`make serve` call first, through `migrate`) in a child process with the environment given.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "DATABASE_", "DJANGO_"))}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FHIR_MAX_COUNT", "-5", "FHIR_MAX_COUNT=-5 is too small: it must be at least 1"),
        ("FHIR_DEFAULT_COUNT", "0", "FHIR_DEFAULT_COUNT=0 is too small"),
        ("FHIR_DEFAULT_COUNT", "5000", "FHIR_DEFAULT_COUNT=5000 is larger than FHIR_MAX_COUNT=1000"),
        ("FHIR_MAX_COUNT", "lots", "FHIR_MAX_COUNT='lots' is not an integer"),
        ("FHIR_MAX_COUNT", "²", "FHIR_MAX_COUNT='²' is not an integer"),
        ("FHIR_MAX_INCLUDE", "0", "FHIR_MAX_INCLUDE=0 is too small"),
        ("FHIR_CONDITIONAL_DELETE_MAX", "-1", "FHIR_CONDITIONAL_DELETE_MAX=-1 is too small"),
        ("FHIR_DEFINITIONS_REFRESH", "-1", "FHIR_DEFINITIONS_REFRESH=-1 is too small"),
        ("FHIR_ANALYZE_ROWS", "-1", "FHIR_ANALYZE_ROWS=-1 is too small"),
        ("FHIR_AUTH_REQUIRED", "maybe", "FHIR_AUTH_REQUIRED='maybe' is not a boolean"),
        ("FHIR_BASE_URL", "fhir.example.org", "FHIR_BASE_URL='fhir.example.org' must be an absolute http(s) URL"),
        ("DATABASE_POOL_MAX", "0", "DATABASE_POOL_MAX=0 is too small"),
        ("DATABASE_POOL_MIN", "9", "DATABASE_POOL_MIN=9 is larger than DATABASE_POOL_MAX=8"),
        ("DATABASE_POOL_TIMEOUT", "nan", "DATABASE_POOL_TIMEOUT='nan' is not a finite number"),
        ("DATABASE_URL", "mysqlx://db/fhir", "DATABASE_URL is not a database URL"),
        ("PORT", "70000", "PORT=70000 is too large: it must be at most 65535"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY=0 is too small"),
        ("GUNICORN_WORKER_CLASS", "eventlet", "GUNICORN_WORKER_CLASS='eventlet'"),
        ("GUNICORN_THREADS", "0", "GUNICORN_THREADS=0 is too small"),
        ("SECURE_HSTS_SECONDS", "-1", "SECURE_HSTS_SECONDS=-1 is too small"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD'"),
        ("ALLOWED_HOSTS", ",", "ALLOWED_HOSTS is empty"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(name, value, says):
    line = one_line_error(manage("check", **{name: value}))
    assert line.startswith("configuration error: "), line
    assert says in line


def test_good_settings_pass_the_start_up_check():
    result = manage("check", FHIR_MAX_COUNT="50", FHIR_DEFAULT_COUNT="50", DATABASE_POOL_TIMEOUT="2.5")
    assert result.returncode == 0, result.stderr


def test_an_unreachable_database_fails_fast_with_one_line():
    started = time.monotonic()
    # Nothing listens on port 1: the pool would retry for its whole timeout (30 s by default).
    result = manage("migrate", DATABASE_URL="postgres://fhir@127.0.0.1:1/fhir", DATABASE_CONNECT_TIMEOUT="2")
    elapsed = time.monotonic() - started
    line = one_line_error(result)
    assert line.startswith("start-up error: cannot connect to the database 127.0.0.1:1/fhir (DATABASE_URL)"), line
    assert elapsed < 15, elapsed


def test_production_refuses_the_development_secret_key():
    # `make serve` sets DJANGO_REQUIRE_SECRET_KEY; `make run` and the tests do not.
    line = one_line_error(manage("check", DJANGO_REQUIRE_SECRET_KEY="true"))
    assert "DJANGO_SECRET_KEY is unset or the development key" in line
    line = one_line_error(manage("check", DJANGO_REQUIRE_SECRET_KEY="true",
                                 DJANGO_SECRET_KEY="dev-insecure-secret-key-change-me"))
    assert "DJANGO_SECRET_KEY" in line


def test_production_accepts_a_real_secret_key_or_debug_mode():
    assert manage("check", DJANGO_REQUIRE_SECRET_KEY="true", DJANGO_SECRET_KEY="k" * 50).returncode == 0
    assert manage("check", DJANGO_REQUIRE_SECRET_KEY="true", DJANGO_DEBUG="true").returncode == 0
