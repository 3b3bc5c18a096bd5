"""Token lookups remembered per process are forgotten as soon as the token, its client or its
person changes (smart_auth.token_cache), on PostgreSQL where the cache is on.

These tests commit (transaction=True): the database notifies changes at commit.
"""
from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from fhir_api.store import repository
from smart_auth import token_cache
from tests.access_tokens import bearer, make_client, make_user, mint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.auth_on, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def cache_on(settings, on_postgres):
    if not on_postgres:
        pytest.skip("the token cache is PostgreSQL-only (it needs LISTEN/NOTIFY)")
    settings.SMART_TOKEN_CACHE = True
    token_cache.forget()
    assert token_cache.wait_until_listening(), "the listener thread did not connect"
    yield
    token_cache.stop()  # its connection would keep the test database from being dropped


@pytest.fixture
def patient_id() -> str:
    return repository.create("Patient", {"resourceType": "Patient"}).stored.logical_id


def read(client, patient_id: str, token: str) -> int:
    return client.get(f"/fhir/Patient/{patient_id}", **{"HTTP_" + k.upper(): v for k, v in bearer(token).items()}
                      ).status_code


def eventually_refused(client, patient_id: str, token: str) -> float:
    """Seconds until the token is refused (a refused answer within a second is required)."""
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        if read(client, patient_id, token) == 401:
            return time.monotonic() - start
        time.sleep(0.005)
    pytest.fail("the token was still accepted a second after the change")


def test_a_remembered_token_is_served_without_looking_it_up(client, patient_id, django_assert_max_num_queries):
    token = mint("system/*.rs")
    assert read(client, patient_id, token) == 200  # looked up, remembered
    with django_assert_max_num_queries(1):  # the read itself only
        assert read(client, patient_id, token) == 200


def test_a_deleted_token_is_refused_within_milliseconds(client, patient_id):
    token = mint("system/*.rs")
    assert read(client, patient_id, token) == 200
    get_access_token_model().objects.all().delete()
    assert eventually_refused(client, patient_id, token) < 0.05


def test_a_revoked_token_is_refused(client, patient_id):
    client_app = make_client(client_secret="s3cret-value-for-tests")
    token = mint("system/*.rs", client=client_app)
    assert read(client, patient_id, token) == 200
    basic = base64.b64encode(f"{client_app.client_id}:s3cret-value-for-tests".encode()).decode()
    response = client.post("/auth/revoke", {"token": token}, HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200
    assert eventually_refused(client, patient_id, token) < 0.05


def test_a_disabled_client_or_person_ends_their_tokens(client, patient_id):
    app = make_client()
    token = mint("system/*.rs", client=app)
    assert read(client, patient_id, token) == 200
    type(app).objects.filter(pk=app.pk).update(is_active=False)
    eventually_refused(client, patient_id, token)
    person = make_user("carol")
    token = mint("user/*.rs", user=person, fhir_user=f"Patient/{patient_id}")
    assert read(client, patient_id, token) == 200
    get_user_model().objects.filter(pk=person.pk).update(is_active=False)
    eventually_refused(client, patient_id, token)


def test_a_remembered_token_still_expires(client, patient_id):
    token = mint("system/*.rs", expires_in=1)
    assert read(client, patient_id, token) == 200
    time.sleep(1.1)
    assert read(client, patient_id, token) == 401


def test_nothing_is_remembered_while_the_listener_is_away(client, patient_id, monkeypatch):
    monkeypatch.setattr(token_cache._watcher, "listening", False)
    token_cache.forget()
    token = mint("system/*.rs")
    assert read(client, patient_id, token) == 200
    assert token_cache._watcher.rows == {}
    # and a lookup that raced with a change is not remembered either
    monkeypatch.setattr(token_cache._watcher, "listening", True)
    row = token_cache.lookup("race", lambda: (token_cache.forget(), ("row",))[1])
    assert row == ("row",) and "race" not in token_cache._watcher.rows


def test_changing_a_token_expiry_is_seen(client, patient_id):
    token = mint("system/*.rs")
    assert read(client, patient_id, token) == 200
    get_access_token_model().objects.update(expires=timezone.now() - timedelta(seconds=1))
    eventually_refused(client, patient_id, token)
