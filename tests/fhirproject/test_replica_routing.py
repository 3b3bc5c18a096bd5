"""Read replicas in process: the router's rules, the read-your-writes pins, and the settings
and start-up checks of DATABASE_REPLICA_URLS and DATABASE_DIRECT_URL. The routing against a
real streaming replica is proved by test_read_replicas.py (slow)."""
from __future__ import annotations

import hashlib

import pytest
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import RequestFactory

from fhir_api.store import routing
from fhir_api.store.models import Job, Resource, ResourceVersion
from fhirproject import replicas
from smart_auth.models import Client
from tests.fhirproject.test_settings import manage, one_line_error
from tests.live import database_url

ROUTER = routing.ReplicaRouter()


def test_without_a_replica_scope_everything_reads_the_primary():
    assert ROUTER.db_for_read(Resource) == "default"
    assert routing.reading_alias() == "default"


def test_in_a_replica_scope_the_fhir_data_is_read_from_the_replica():
    with routing.reading_from("replica1"):
        assert ROUTER.db_for_read(Resource) == "replica1"
        assert ROUTER.db_for_read(ResourceVersion) == "replica1"
        assert routing.reading_alias() == "replica1"
    assert ROUTER.db_for_read(Resource) == "default"


def test_jobs_tokens_clients_and_sessions_are_always_read_from_the_primary():
    with routing.reading_from("replica1"):
        assert ROUTER.db_for_read(Job) == "default"
        assert ROUTER.db_for_read(Client) == "default"
        assert ROUTER.db_for_read(Session) == "default"


def test_writes_and_migrations_go_to_the_primary_only():
    with routing.reading_from("replica1"):
        assert ROUTER.db_for_write(Resource) == "default"
    assert ROUTER.allow_migrate("default", "fhir_api")
    assert not ROUTER.allow_migrate("replica1", "fhir_api")


@pytest.mark.django_db(transaction=True)
def test_reads_inside_a_transaction_on_the_primary_read_the_primary():
    with routing.reading_from("replica1"):
        with transaction.atomic():
            assert ROUTER.db_for_read(Resource) == "default"
            assert routing.reading_alias() == "default"
        assert routing.reading_alias() == "replica1"


def _request(**meta):
    return RequestFactory().get("/fhir/Patient/1", **meta)


def test_a_client_with_a_token_is_known_by_its_hash_and_never_by_the_token():
    token = "abc.def.ghi"
    key = replicas.client_key(_request(HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="10.0.0.1"))
    assert key == "token:" + hashlib.sha256(token.encode()).hexdigest()
    assert token not in key


def test_a_client_without_a_token_is_known_by_its_address():
    assert replicas.client_key(_request(REMOTE_ADDR="10.0.0.7")) == "address:10.0.0.7"
    assert replicas.client_key(_request(REMOTE_ADDR="10.0.0.7")) != replicas.client_key(_request(REMOTE_ADDR="10.0.0.8"))


def test_a_client_that_wrote_is_pinned_for_the_pin_seconds(settings):
    settings.DATABASE_REPLICA_PIN_SECONDS = 5
    writer, other = _request(REMOTE_ADDR="10.1.0.1"), _request(REMOTE_ADDR="10.1.0.2")
    assert not replicas.pinned(writer)
    replicas.pin(writer)
    assert replicas.pinned(writer) and not replicas.pinned(other)


def test_a_cache_that_cannot_be_read_sends_reads_to_the_primary(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    settings.DATABASE_REPLICA_PIN_SECONDS = 5
    assert replicas.pinned(_request(REMOTE_ADDR="10.2.0.1"))  # nothing listens on port 1


def test_no_pins_when_the_pin_seconds_are_zero(settings):
    settings.DATABASE_REPLICA_PIN_SECONDS = 0
    writer = _request(REMOTE_ADDR="10.3.0.1")
    replicas.pin(writer)
    assert not replicas.pinned(writer)


# -- settings and start-up -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DATABASE_REPLICA_URLS": "postgres://fhir@127.0.0.1:5433/fhir"},
         "DATABASE_REPLICA_URLS needs a PostgreSQL primary in DATABASE_URL"),
        ({"DATABASE_URL": "postgres://fhir@127.0.0.1:5432/fhir", "DATABASE_REPLICA_URLS": "postgres://h:5433/fhir"},
         "DATABASE_REPLICA_URLS needs REDIS_URL"),
        ({"DATABASE_URL": "postgres://fhir@127.0.0.1:5432/fhir", "REDIS_URL": "redis://127.0.0.1:6379/0",
          "DATABASE_REPLICA_URLS": "postgres://h:5433/fhir,sqlite:///tmp/x.db"},
         "DATABASE_REPLICA_URLS entry 2 must be a postgres:// URL"),
        ({"DATABASE_REPLICA_PIN_SECONDS": "-1"}, "DATABASE_REPLICA_PIN_SECONDS=-1 is too small"),
        ({"DATABASE_REPLICA_TIMEOUT": "1"}, "DATABASE_REPLICA_TIMEOUT=1 is too small"),
        ({"DATABASE_DIRECT_URL": "postgres://fhir@127.0.0.1:5432/fhir"}, "DATABASE_DIRECT_URL must be a postgres:// URL"),
    ],
)
def test_a_bad_replica_setting_stops_start_up_with_one_line(env, says):
    line = one_line_error(manage("check", **{"REDIS_URL": "", **env}))
    assert line.startswith("configuration error: ") and says in line, line


def test_replicas_with_redis_or_without_pins_pass_the_start_up_check():
    primary = {"DATABASE_URL": "postgres://fhir@127.0.0.1:5432/fhir",
               "DATABASE_REPLICA_URLS": "postgres://fhir@10.0.0.2:5432/fhir, postgres://fhir@10.0.0.3:5432/fhir"}
    assert manage("check", REDIS_URL="redis://127.0.0.1:6379/0", **primary).returncode == 0
    assert manage("check", REDIS_URL="", DATABASE_REPLICA_PIN_SECONDS="0", **primary).returncode == 0


def test_an_unreachable_replica_fails_start_up_with_one_line():
    if connection.vendor != "postgresql":
        pytest.skip("the primary must be reachable: run with DATABASE_URL=postgres://...")
    line = one_line_error(manage("migrate", DATABASE_URL=database_url(connection.settings_dict),
                                 REDIS_URL="redis://127.0.0.1:6379/0",
                                 DATABASE_REPLICA_URLS="postgres://fhir@127.0.0.1:1/fhir"))
    assert line.startswith("start-up error: cannot connect to the database 127.0.0.1:1/fhir "
                           "(DATABASE_REPLICA_URLS entry 1)"), line


def test_a_replica_that_is_not_a_standby_fails_start_up_with_one_line():
    """Reads from a database that does not replay the primary would answer from other data."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://...")
    url = database_url(connection.settings_dict)
    line = one_line_error(manage("migrate", DATABASE_URL=url, REDIS_URL="redis://127.0.0.1:6379/0",
                                 DATABASE_REPLICA_URLS=url))
    assert line == ("start-up error: DATABASE_REPLICA_URLS entry 1 is not a standby (pg_is_in_recovery() is false): "
                    "name streaming replicas of the primary there")


def test_an_unreachable_direct_url_fails_start_up_with_one_line():
    if connection.vendor != "postgresql":
        pytest.skip("the primary must be reachable: run with DATABASE_URL=postgres://...")
    line = one_line_error(manage("migrate", DATABASE_URL=database_url(connection.settings_dict),
                                 DATABASE_DIRECT_URL="postgres://fhir@127.0.0.1:1/fhir"))
    assert line.startswith("start-up error: cannot connect to the database 127.0.0.1:1/fhir (DATABASE_DIRECT_URL)"), line
