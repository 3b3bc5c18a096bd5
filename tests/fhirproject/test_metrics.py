"""GET /metrics: Prometheus text, counters that move, and who may read it."""
from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.access_tokens import bearer, make_client, mint

pytestmark = pytest.mark.django_db


def _samples(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_counters_move_by_interaction_resource_type_and_status(client, fhir):
    before = _samples(client)
    created = fhir.post("/Patient", {"resourceType": "Patient", "gender": "male"})
    patient_id = created.json()["id"]
    fhir.get(f"/Patient/{patient_id}")
    fhir.get(f"/Patient/{patient_id}")
    fhir.get("/Patient/does-not-exist")
    fhir.get("/Observation", code="1234-5")
    after = _samples(client)
    read_ok = dict(interaction="read", resource_type="Patient", status="200")
    assert _value(after, "fhir_requests_total", **read_ok) - _value(before, "fhir_requests_total", **read_ok) == 2
    missing = dict(interaction="read", resource_type="Patient", status="404")
    assert _value(after, "fhir_requests_total", **missing) - _value(before, "fhir_requests_total", **missing) == 1
    create = dict(interaction="create", resource_type="Patient", status="201")
    assert _value(after, "fhir_requests_total", **create) - _value(before, "fhir_requests_total", **create) == 1
    search = dict(interaction="search-type", resource_type="Observation", status="200")
    assert _value(after, "fhir_requests_total", **search) - _value(before, "fhir_requests_total", **search) == 1
    # Latency and database time are histograms per interaction; a read runs statements.
    count = "fhir_request_duration_seconds_count"
    assert _value(after, count, interaction="read") - _value(before, count, interaction="read") == 3
    db_sum = "fhir_request_database_seconds_sum"
    assert _value(after, db_sum, interaction="create") > _value(before, db_sum, interaction="create")


def test_made_up_urls_do_not_make_new_label_values(client, fhir):
    fhir.get("/Nonsense123/1")
    fhir.get("/Patient/1/$made-up")
    text = client.get("/metrics").content.decode()
    assert "Nonsense123" not in text
    assert "made-up" not in text
    assert 'interaction="$unknown",resource_type="Patient"' in text


def test_token_grants_and_denials_are_counted(client):
    from smart_auth.models import Client

    before = _samples(client)
    app = Client(name="metrics app", client_type=Client.CLIENT_CONFIDENTIAL,
                 authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS, client_secret="s3cret-s3cret-s3cret")
    app.save()
    # A confidential symmetric client without keys cannot use client_credentials here: denied.
    response = client.post("/auth/token", {"grant_type": "client_credentials", "scope": "system/*.rs"},
                           HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(
                               f"{app.client_id}:wrong".encode()).decode())
    assert response.status_code in (400, 401)
    after = _samples(client)
    denied = dict(grant_type="client_credentials", result="denied")
    assert _value(after, "fhir_token_requests_total", **denied) - _value(before, "fhir_token_requests_total",
                                                                       **denied) == 1


@pytest.mark.auth_on
def test_metrics_need_no_fhir_token_but_an_allowed_address(client):
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1


def test_metrics_refuse_an_address_outside_the_allowed_networks(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert b"fhir_requests" not in response.content


def test_metrics_take_the_bearer_secret_from_anywhere_and_refuse_a_wrong_one(client, settings):
    settings.METRICS_BEARER_TOKEN = "a-long-metrics-secret-0123456789"
    away = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-metrics-secret-0123456789",
                      **away).status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-metrics-secret-012345678X",
                      **away).status_code == 403
    assert client.get("/metrics", **away).status_code == 403


def test_an_empty_allow_list_refuses_even_loopback(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ()
    assert client.get("/metrics").status_code == 403


def test_a_bad_allowed_ip_setting_stops_the_server():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import django, os; "
                             "os.environ['DJANGO_SETTINGS_MODULE']='fhirproject.settings'; django.setup()"],
                            env={**__import__("os").environ, "METRICS_ALLOWED_IPS": "10.0.0.0/33"},
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS" in result.stderr


@pytest.mark.auth_on
def test_fhir_refusals_are_counted_by_status(client, fhir):
    before = _samples(client)
    fhir.get("/Patient")  # no token: 401
    fhir.get("/Patient", headers=bearer(mint("system/Observation.rs", client=make_client())))  # 403
    after = _samples(client)
    for status in ("401", "403"):
        labels = dict(interaction="search-type", resource_type="Patient", status=status)
        assert _value(after, "fhir_requests_total", **labels) - _value(before, "fhir_requests_total", **labels) == 1
    assert re.search(r"fhir_request_duration_seconds_bucket\{interaction=\"search-type\",le=\"0.001\"\}", 
                     client.get("/metrics").content.decode())


def test_the_job_queue_depth_counts_queued_and_running_jobs_by_kind(client, settings):
    from fhir_api.store import jobs
    from fhir_api.store.models import Job

    settings.FHIR_JOBS = "database"  # jobs wait in the table
    assert not any(name == "fhir_jobs" for name, _ in _samples(client))
    jobs.submit("reindex", {})
    jobs.submit("reindex", {})
    running = jobs.submit("reindex", {})
    Job.objects.filter(pk=running.pk).update(status=Job.RUNNING)
    samples = _samples(client)
    assert _value(samples, "fhir_jobs", kind="reindex", status=Job.QUEUED) == 2
    assert _value(samples, "fhir_jobs", kind="reindex", status=Job.RUNNING) == 1
