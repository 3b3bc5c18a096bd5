"""`manage.py smart_client`: registering SMART apps from scripts and CI.

https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr and
https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html -- public,
confidential symmetric (secret shown once, stored hashed) and confidential asymmetric
(public JWKS) clients; every refusal is one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher
from django.core.management import CommandError

from smart_auth.models import Client
from tests.smart_auth.conftest import key_pair, key_set, run

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
APP = "https://growth.example.org"


def _stored(client_id: str) -> Client:
    return Client.objects.get(client_id=client_id)


def test_create_confidential_symmetric_prints_the_secret_once_and_stores_only_its_hash():
    out = run("smart_client", "create", "--name", "Growth chart", "--redirect-uri", f"{APP}/callback",
              "--scope", "patient/*.rs", "launch", "openid", "fhirUser")
    assert out["client_secret"] and out["token_endpoint_auth_method"] == "client_secret_basic"
    client = _stored(out["client_id"])
    assert client.client_type == Client.CLIENT_CONFIDENTIAL
    assert client.authorization_grant_type == Client.GRANT_AUTHORIZATION_CODE
    assert client.algorithm == Client.RS256_ALGORITHM
    assert client.client_secret != out["client_secret"]
    identify_hasher(client.client_secret)
    assert check_password(out["client_secret"], client.client_secret)
    assert "client_secret" not in run("smart_client", "show", out["client_id"])


def test_redirect_uri_and_scope_take_several_values_and_repeat():
    out = run("smart_client", "create", "--name", "App", "--redirect-uri", f"{APP}/a", f"{APP}/b",
              "--scope", "patient/Observation.rs?category=laboratory", "launch/patient",
              "--redirect-uri", f"{APP}/c", "--scope", "offline_access")
    client = _stored(out["client_id"])
    assert client.redirect_uris.split() == [f"{APP}/a", f"{APP}/b", f"{APP}/c"]
    assert client.scope_list == ["patient/Observation.rs?category=laboratory", "launch/patient", "offline_access"]
    assert out["redirect_uris"] == client.redirect_uris.split() and out["scopes"] == client.scope_list


def test_without_scope_the_client_may_ask_for_any_scope_of_its_kind():
    out = run("smart_client", "create", "--name", "Any", "--redirect-uri", f"{APP}/cb")
    assert out["scopes"] == [] and _stored(out["client_id"]).allowed_scopes == ""


def test_create_public_client_has_no_secret_anyone_could_present():
    out = run("smart_client", "create", "--name", "Phone app", "--public", "--redirect-uri", f"{APP}/cb")
    assert "client_secret" not in out and out["token_endpoint_auth_method"] == "none"
    client = _stored(out["client_id"])
    assert client.is_public
    # Not blank: DOT would take a blank stored secret to match HTTP Basic "client_id:".
    identify_hasher(client.client_secret)
    assert not check_password("", client.client_secret)


def test_create_backend_service_with_a_jwks_file(public_jwks_file):
    out = run("smart_client", "create", "--name", "Nightly export", "--grant-type", "client_credentials",
              "--jwks", public_jwks_file, "--scope", "system/*.rs")
    assert "client_secret" not in out
    assert out["token_endpoint_auth_method"] == "private_key_jwt" and out["grant_type"] == "client_credentials"
    assert out["jwks_kids"] == ["rsa-1", "ec-1"]
    client = _stored(out["client_id"])
    assert client.authorization_grant_type == Client.GRANT_CLIENT_CREDENTIALS
    assert client.client_type == Client.CLIENT_CONFIDENTIAL
    assert [k["kid"] for k in json.loads(client.jwks)["keys"]] == ["rsa-1", "ec-1"]
    assert client.scope_list == ["system/*.rs"]
    assert client.access_token_lifetime <= 300
    assert not check_password("", client.client_secret)


def test_create_backend_service_with_a_jwks_uri():
    out = run("smart_client", "create", "--name", "Lab feed", "--grant-type", "client_credentials",
              "--jwks-uri", "https://lab.example.org/.well-known/jwks.json")
    assert out["jwks_uri"] == "https://lab.example.org/.well-known/jwks.json"
    assert out["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in out


def test_http_jwks_uri_only_where_private_keys_hosts_are_allowed(settings):
    args = ("smart_client", "create", "--name", "Dev", "--grant-type", "client_credentials",
            "--jwks-uri", "http://localhost:9000/jwks")
    with pytest.raises(CommandError, match="is not an https URL"):
        run(*args)
    settings.SMART_JWKS_ALLOW_PRIVATE = True
    assert run(*args)["jwks_uri"] == "http://localhost:9000/jwks"


def test_authorization_code_client_with_keys_is_confidential_asymmetric(public_jwks_file):
    out = run("smart_client", "create", "--name", "Clinic app", "--redirect-uri", f"{APP}/cb",
              "--jwks", public_jwks_file, "--launch-uri", f"{APP}/launch")
    assert out["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in out
    assert out["launch_uri"] == f"{APP}/launch" and out["grant_type"] == "authorization_code"


def test_purpose_of_use_and_break_glass_are_stored():
    out = run("smart_client", "create", "--name", "ER", "--redirect-uri", f"{APP}/cb",
              "--purpose-of-use", "TREAT", "--break-glass")
    client = _stored(out["client_id"])
    assert (client.purpose_of_use, client.break_glass) == ("TREAT", True)
    assert (out["purpose_of_use"], out["break_glass"]) == ("TREAT", True)


def test_a_registered_app_gets_the_device_that_names_it_in_consents():
    from fhir_api.store import repository

    out = run("smart_client", "create", "--name", "Growth chart", "--redirect-uri", f"{APP}/cb")
    kind, device_id = out["device"].split("/")
    device = repository.read(kind, device_id).content
    assert device["identifier"] == [{"system": "urn:ietf:params:oauth:client-id", "value": out["client_id"]}]
    assert device["deviceName"][0]["name"] == "Growth chart"
    assert run("smart_client", "show", out["client_id"])["device"] == out["device"]


def test_list_shows_every_client_without_secrets(public_jwks_file):
    a = run("smart_client", "create", "--name", "A", "--redirect-uri", f"{APP}/cb")
    b = run("smart_client", "create", "--name", "B", "--grant-type", "client_credentials", "--jwks", public_jwks_file)
    listed = run("smart_client", "list")
    assert [c["client_id"] for c in listed] == [a["client_id"], b["client_id"]]
    assert all("client_secret" not in c for c in listed)


def test_list_of_no_clients_is_an_empty_array():
    assert run("smart_client", "list") == []


def test_show_prints_the_registration():
    made = run("smart_client", "create", "--name", "Shown", "--redirect-uri", f"{APP}/cb", "--scope", "user/*.rs")
    shown = run("smart_client", "show", made["client_id"])
    assert shown == {k: v for k, v in made.items() if k != "client_secret"}


def test_disable_then_enable():
    made = run("smart_client", "create", "--name", "Off", "--redirect-uri", f"{APP}/cb")
    assert run("smart_client", "disable", made["client_id"])["is_active"] is False
    assert _stored(made["client_id"]).is_active is False
    assert run("smart_client", "enable", made["client_id"])["is_active"] is True
    assert _stored(made["client_id"]).is_active is True


def test_rotate_secret_prints_a_new_secret_and_the_old_one_stops_matching():
    made = run("smart_client", "create", "--name", "Rotated", "--redirect-uri", f"{APP}/cb")
    rotated = run("smart_client", "rotate-secret", made["client_id"])
    assert set(rotated) == {"client_id", "client_secret"} and rotated["client_secret"] != made["client_secret"]
    stored = _stored(made["client_id"]).client_secret
    assert check_password(rotated["client_secret"], stored)
    assert not check_password(made["client_secret"], stored)


def test_delete_removes_the_client():
    made = run("smart_client", "create", "--name", "Gone", "--redirect-uri", f"{APP}/cb")
    assert run("smart_client", "delete", made["client_id"]) == {"client_id": made["client_id"], "deleted": True}
    assert not Client.objects.filter(client_id=made["client_id"]).exists()


# -- refusals: exit code 1 and one line on stderr, nothing stored ----------------------------

def _refused(cli, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: "), result.stderr
    assert result.stdout == ""
    return lines[0]


CODE = ("smart_client", "create", "--name", "Bad", "--redirect-uri", f"{APP}/cb")
BACKEND = ("smart_client", "create", "--name", "Bad", "--grant-type", "client_credentials")


@pytest.mark.parametrize("args,message", [
    (CODE + ("--scope", "patient/Observation.rx"), "bad scope"),
    (CODE + ("--scope", "superpowers"), "unknown scope 'superpowers'"),
    (CODE + ("--scope", "patient/Observation.read?category=laboratory"), "only v2 scopes"),
    (CODE + ("--scope", "system/*.rs"), "system/ scopes are for backend services"),
    (("smart_client", "create", "--name", "Bad"), "needs at least one --redirect-uri"),
    (("smart_client", "create", "--name", "Bad", "--redirect-uri", f"{APP}/cb#frag"), "must not have a #fragment"),
    (("smart_client", "create", "--name", "Bad", "--redirect-uri", "ftp://files.example.org/cb"), "redirect_uris"),
    (("smart_client", "create", "--name", "Bad", "--redirect-uri", "/relative"), "not an absolute URL"),
    (("smart_client", "create", "--name", "Bad", "--redirect-uri", "https:/cb"), "not an absolute URL"),
    (("smart_client", "create", "--name", "Bad", "--redirect-uri", "com.example.app:/cb"), "redirect_uris"),
    (CODE + ("--launch-uri", "not a url"), "--launch-uri"),
    (CODE + ("--grant-type", "password"), "--grant-type must be authorization_code or client_credentials"),
    (CODE + ("--purpose-of-use", "two words"), "--purpose-of-use"),
    (CODE + ("--purpose-of-use", "ETREAT"), "only for clients registered for it (--break-glass)"),
    (BACKEND, "needs --jwks FILE or --jwks-uri URL"),
    (BACKEND + ("--jwks-uri", "https://a.example.org/jwks", "--public"), "--public"),
    (BACKEND + ("--jwks-uri", "https://a.example.org/jwks", "--jwks", "x.json"), "not both"),
    (BACKEND + ("--jwks-uri", "https://a.example.org/jwks", "--scope", "patient/*.rs"), "only have system/ scopes"),
    (BACKEND + ("--jwks-uri", "https://a.example.org/jwks", "--scope", "launch"), "only have system/ scopes"),
    (BACKEND + ("--jwks", "/nonexistent/jwks.json"), "cannot be read"),
])
def test_refusals_exit_1_with_one_line(cli, args, message):
    line = _refused(cli, *args)
    assert message in line
    assert Client.objects.count() == 0


def test_a_binary_jwks_file_is_refused(cli, tmp_path):
    path = tmp_path / "key.der"
    path.write_bytes(b"\x30\x82\xff\xfe binary")
    assert "cannot be read (not a text file)" in _refused(cli, *BACKEND, "--jwks", str(path))


@pytest.mark.parametrize("content,message", [
    ("this is not json", "is not JSON"),
    ('{"kty": "RSA", "n": "x", "e": "AQAB"}', 'not a JSON Web Key Set (an object with a "keys" array)'),
    ('[1, 2]', "not a JSON Web Key Set"),
    ('{"keys": []}', "holds no keys"),
    ('{"keys": [{"kty": "RSA", "kid": "k"}]}', "not a valid JSON Web Key Set"),
])
def test_a_jwks_file_that_is_not_a_key_set_is_refused(cli, write_file, content, message):
    assert message in _refused(cli, *BACKEND, "--jwks", write_file("jwks.json", content))
    assert Client.objects.count() == 0


def test_a_jwks_with_a_private_key_is_refused(cli, write_file):
    path = write_file("jwks.json", key_set(key_pair("RSA", "secret-key"), private=True))
    assert "contains a private key (secret-key)" in _refused(cli, *BACKEND, "--jwks", path)


def test_a_jwks_with_a_private_ec_key_among_public_ones_is_refused(cli, write_file):
    keys = key_set(key_pair("RSA", "pub"))["keys"] + key_set(key_pair("EC", "priv"), private=True)["keys"]
    assert "contains a private key (priv)" in _refused(cli, *BACKEND, "--jwks", write_file("j.json", {"keys": keys}))


def test_a_jwks_with_a_symmetric_key_is_refused(cli, write_file):
    path = write_file("jwks.json", {"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]})
    assert "only RSA and EC public keys" in _refused(cli, *BACKEND, "--jwks", path)


def test_jwks_keys_need_distinct_kids(cli, write_file):
    no_kid = key_set(key_pair("RSA", "k"))
    del no_kid["keys"][0]["kid"]
    assert 'every key needs a "kid"' in _refused(cli, *BACKEND, "--jwks", write_file("a.json", no_kid))
    twice = key_set(key_pair("RSA", "same"), key_pair("EC", "same"))
    assert "used by more than one key" in _refused(cli, *BACKEND, "--jwks", write_file("b.json", twice))


@pytest.mark.parametrize("action", ["show", "disable", "enable", "rotate-secret", "delete"])
def test_an_unknown_client_id_is_refused(cli, action):
    assert "no client with client_id 'nope'" in _refused(cli, "smart_client", action, "nope")


@pytest.mark.parametrize("flag", ["--public", "--jwks-uri"])
def test_rotate_secret_refuses_clients_without_a_secret(cli, flag):
    extra = ("--public",) if flag == "--public" else ("--jwks-uri", "https://a.example.org/jwks")
    made = run("smart_client", "create", "--name", "NoSecret", "--redirect-uri", f"{APP}/cb", *extra)
    stored = _stored(made["client_id"]).client_secret
    assert "has no secret to rotate" in _refused(cli, "smart_client", "rotate-secret", made["client_id"])
    assert _stored(made["client_id"]).client_secret == stored


def test_the_cli_entry_point_succeeds_with_exit_0(cli):
    result = cli("smart_client", "create", "--name", "Entry", "--redirect-uri", f"{APP}/cb")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["client_secret"]


def test_manage_py_smart_client_create_in_a_real_process(tmp_path, public_jwks_file):
    """The exact command line, in its own process, against its own (SQLite) database."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(SQLITE_PATH=str(tmp_path / "cli.sqlite3"), FHIR_WARM_UP="false", PYTHONPATH=str(ROOT))

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    assert manage("migrate", "--noinput", "-v0").returncode == 0
    made = manage("smart_client", "create", "--name", "Growth chart",
                  "--redirect-uri", f"{APP}/a", f"{APP}/b", "--scope", "patient/*.rs", "launch", "openid")
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    assert out["client_secret"] and out["redirect_uris"] == [f"{APP}/a", f"{APP}/b"]
    assert out["scopes"] == ["patient/*.rs", "launch", "openid"]

    bad = manage("smart_client", "create", "--name", "Bad", "--grant-type", "client_credentials",
                 "--jwks", public_jwks_file, "--scope", "patient/*.rs")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "CommandError: scope 'patient/*.rs': a backend service (client_credentials) may only have system/ scopes"]
