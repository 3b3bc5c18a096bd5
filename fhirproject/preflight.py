"""Start-up checks that end in one clear line instead of a long traceback or a long wait.

Settings are checked when they are read (fhirproject.env raises SettingError); this module
adds the database: one direct connection with a short timeout, so a wrong DATABASE_URL
fails `make run`/`make serve` (their `migrate`) within DATABASE_CONNECT_TIMEOUT seconds
instead of waiting for the connection pool's timeout.
"""
from __future__ import annotations

import sys

# Commands that need the database; others (help, check, collectstatic...) start without it.
DATABASE_COMMANDS = {"migrate", "runserver", "reindex", "createsuperuser", "shell", "dbshell", "loaddata"}


class StartupError(Exception):
    """Something the server cannot start with, in one line."""


def check_database() -> None:
    """Open one connection to the configured database (no pool) and run SELECT 1; the same for
    each read replica, which must also be a standby (in recovery), and the direct URL."""
    from django.conf import settings
    from django.db import connections

    wrapper = connections["default"]
    if wrapper.vendor != "postgresql":
        return  # SQLite: the file is created on first use
    params = wrapper.get_connection_params()  # libpq parameters, without the pool options
    _connect(params, settings.DATABASE_CONNECT_TIMEOUT, "DATABASE_URL")
    for number, alias in enumerate(settings.DATABASE_REPLICA_ALIASES, start=1):
        standby = _connect(connections[alias].get_connection_params(), settings.DATABASE_REPLICA_TIMEOUT,
                           f"DATABASE_REPLICA_URLS entry {number}", "SELECT pg_is_in_recovery()")
        if not standby:
            # Reads from a database that is not replaying the primary would answer from other data.
            raise StartupError(f"DATABASE_REPLICA_URLS entry {number} is not a standby (pg_is_in_recovery() "
                               "is false): name streaming replicas of the primary there")
    if settings.DATABASE_DIRECT:
        from smart_auth.token_cache import listener_params

        _connect(listener_params(), settings.DATABASE_CONNECT_TIMEOUT, "DATABASE_DIRECT_URL")


def _connect(params: dict, timeout: float, setting: str, query: str = "SELECT 1"):
    import psycopg

    params = {**params, "connect_timeout": timeout}
    params.pop("cursor_factory", None)
    where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{params.get('dbname')}"
    try:
        with psycopg.connect(**params) as conn:
            return conn.execute(query).fetchone()[0]
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())  # libpq errors span lines
        raise StartupError(f"cannot connect to the database {where} ({setting}): {reason}") from None


def run_checks(argv: list[str]) -> None:
    """Load the settings and, for commands that use it, reach the database; exit with one line."""
    from django.conf import settings

    from fhirproject.env import SettingError

    try:
        settings.INSTALLED_APPS  # noqa: B018 -- imports fhirproject.settings, which checks every value
        if len(argv) > 1 and argv[1] in DATABASE_COMMANDS:
            check_database()
    except SettingError as exc:
        sys.exit(f"configuration error: {exc}")
    except StartupError as exc:
        sys.exit(f"start-up error: {exc}")
