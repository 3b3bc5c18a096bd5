"""Clients that trickle their request do not hold up everyone else (`make serve`).

https://hl7.org/fhir/R4/http.html -- a FHIR server answers many clients at once. Ten
clients send their headers or body a byte at a time (a slow network, or an attacker);
a normal read, made meanwhile, must be answered within a second. gunicorn runs as
`make serve` starts it (gunicorn.conf.py, production settings) on the test database.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
from django.db import connection

from fhir_api.store import repository
from tests.live import database_url, request, serve

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Trickler:
    """Sockets that each send one more byte of an unfinished request every `interval` s."""

    def __init__(self, port: int, requests: list[bytes], interval: float = 0.2) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in requests]
        self.pending = list(requests)
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for i, sock in enumerate(self.sockets):
                if self.pending[i]:
                    try:
                        sock.send(self.pending[i][:1])
                    except OSError:
                        pass  # the server may close a connection it gave up on; fine
                    self.pending[i] = self.pending[i][1:]
            self.stop.wait(self.interval)

    def __enter__(self) -> Trickler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def slow_requests(host: str) -> list[bytes]:
    headers = f"GET /fhir/Patient?name=slow HTTP/1.1\r\nHost: {host}\r\nAccept: application/fhir+json\r\n"
    headers += "X-Padding: " + "a" * 400 + "\r\n\r\n"  # never complete within the test
    body = b'{"resourceType":"Patient","name":[{"family":"' + b"s" * 2000 + b'"}]}'
    head = (f"POST /fhir/Patient HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/fhir+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    # five trickle their headers; five send their headers at once, then trickle the body
    return [headers.encode()] * 5 + [head + body] * 5


def test_ten_trickling_clients_do_not_delay_a_normal_read_by_a_second():
    if connection.vendor != "postgresql":
        pytest.skip("the production server runs on PostgreSQL")
    patient = repository.create("Patient", {"resourceType": "Patient", "name": [{"family": "Normal"}]}).stored
    with serve(database_url(connection.settings_dict)) as server:
        host = f"127.0.0.1:{server.port}"
        slow = slow_requests(host)
        # the body tricklers send their complete headers first, then the body byte by byte
        with Trickler(server.port, slow) as trickler:
            for i in range(5, 10):
                head_length = slow[i].index(b"\r\n\r\n") + 4
                trickler.sockets[i].sendall(slow[i][:head_length])
                trickler.pending[i] = slow[i][head_length:]
            time.sleep(1.5)  # every slow client is now in the middle of its request
            for _ in range(5):
                started = time.monotonic()
                status, headers, _ = request(server.port, "GET", f"/fhir/Patient/{patient.logical_id}", timeout=10)
                elapsed = time.monotonic() - started
                assert status == 200
                assert elapsed < 1.0, f"a normal read took {elapsed:.2f} s behind ten slow clients"
            assert all(p for p in trickler.pending), "a slow client finished: the test did not hold them open"


def test_raw_utf8_in_the_query_string_means_what_the_percent_encoded_form_means():
    """`Patient?name:exact=Zoë` typed raw (curl does not encode it) under `make serve`."""
    if connection.vendor != "postgresql":
        pytest.skip("the production server runs on PostgreSQL")
    repository.create("Patient", {"resourceType": "Patient", "name": [{"family": "Zoë"}]})
    with serve(database_url(connection.settings_dict)) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall("GET /fhir/Patient?name:exact=Zoë HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/fhir+json\r\n"
                         "Connection: close\r\n\r\n".encode())
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        status, _, encoded = request(server.port, "GET", "/fhir/Patient?name:exact=Zo%C3%AB")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert status == 200 and b'"total":1' in encoded.replace(b" ", b"")
        assert b'"total":1' in body.replace(b" ", b"") or b'"total": 1' in body
        # controls and spaces are still refused
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /fhir/Patient?name=a\x01b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
