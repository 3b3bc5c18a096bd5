"""Helpers for the SMART tests: run management commands as the CLI does, make key sets."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.management import ManagementUtility, call_command
from django.db import connections
from jwcrypto import jwk


def run(*args: str) -> Any:
    """Run a management command in-process (call_command) and parse its JSON output."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `manage.py <args>` through Django's command-line entry point, in-process, so the
    exit code and stderr are exactly what a script would see (and the test database is used)."""
    # Django is set up already; setting it up again would point logging at this test's
    # captured stderr, which is closed once the test ends.
    monkeypatch.setattr(django, "setup", lambda *args, **kwargs: None)
    # A command run from the command line closes the database connections when it ends;
    # here that connection holds the test's transaction (PostgreSQL), so it stays open.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            ManagementUtility(["manage.py", *args]).execute()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def key_pair(kty: str = "RSA", kid: str = "key-1") -> jwk.JWK:
    if kty == "RSA":
        return jwk.JWK.generate(kty="RSA", size=2048, kid=kid, alg="RS384", use="sig")
    return jwk.JWK.generate(kty="EC", crv="P-384", kid=kid, alg="ES384", use="sig")


def key_set(*keys: jwk.JWK, private: bool = False) -> dict[str, Any]:
    return {"keys": [json.loads(k.export(private_key=private)) for k in keys]}


@pytest.fixture
def write_file(tmp_path: Path):
    def write(name: str, content: Any) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


@pytest.fixture
def public_jwks_file(write_file) -> str:
    return write_file("jwks.json", key_set(key_pair("RSA", "rsa-1"), key_pair("EC", "ec-1")))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Passwords and client secrets are hashed as in production, with a cheap hasher: the
    tests prove what is hashed and checked, not PBKDF2's cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
