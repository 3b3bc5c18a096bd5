"""gunicorn's settings for `make serve` (and the benchmark), from the environment.

Threaded workers (gthread): a worker's main thread accepts connections and waits for
their first bytes without a thread; once a request starts arriving, one of GUNICORN_THREADS
threads reads it. A client that trickles its headers or body holds that one thread, not
the worker, so with 2 workers x 32 threads ten such clients leave 54 threads for everyone
else (sync workers serve one connection each: two trickling clients stop both). The
threads share a process, and the benchmark measured the same or better read throughput
than sync workers (bench/README.md). fhirproject.settings checks these values at start-up.
"""
import re

import gunicorn.http.message

from fhirproject.env import env_int, env_str

# Raw UTF-8 in a request target (`GET /fhir/Patient?name:exact=Zoë`, as curl sends a typed
# URL) must mean what its percent-encoded form means (issue 13). RFC 9112 allows only
# printable ASCII there and gunicorn refuses anything else with an HTML 400 before Django
# sees it; this widens its check to the bytes 0x80-0xFF (still refusing controls, spaces
# and DEL). gunicorn hands the target on as latin-1 text, which Django turns back into the
# original bytes and decodes as UTF-8, exactly as for `make run`.
if not hasattr(gunicorn.http.message, "RFC9112_TARGET_INVALID"):
    raise RuntimeError("gunicorn changed its request-target check: revisit gunicorn.conf.py")
gunicorn.http.message.RFC9112_TARGET_INVALID = re.compile(r"[^\x21-\x7e\x80-\xff]")

bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000)}"
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
worker_class = env_str("GUNICORN_WORKER_CLASS", "gthread")
threads = env_int("GUNICORN_THREADS", 32, minimum=1)
keepalive = 5
max_requests = 0


# -- Prometheus metrics across workers (fhirproject.metrics): each worker writes its values
# into files in PROMETHEUS_MULTIPROC_DIR, and GET /metrics adds up all of them. The folder
# is emptied when gunicorn starts (values of an earlier run would be added in), and a
# worker that exits has its gauges dropped.
import os  # noqa: E402
import glob  # noqa: E402
import tempfile  # noqa: E402

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fhir-metrics-")


def on_starting(server) -> None:
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in glob.glob(os.path.join(folder, "*.db")):  # the library's files only
        os.remove(name)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
