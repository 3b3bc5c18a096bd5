"""gunicorn's settings for `make serve` (and the benchmark), from the environment.

Threaded workers (gthread): a worker's main thread accepts connections and waits for
their first bytes without a thread; once a request starts arriving, one of GUNICORN_THREADS
threads reads it. A client that trickles its headers or body holds that one thread, not
the worker, so with 2 workers x 32 threads ten such clients leave 54 threads for everyone
else (sync workers serve one connection each: two trickling clients stop both). The
threads share a process, and the benchmark measured the same or better read throughput
than sync workers (bench/README.md). fhirproject.settings checks these values at start-up.
"""
from fhirproject.env import env_int, env_str

bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000)}"
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
worker_class = env_str("GUNICORN_WORKER_CLASS", "gthread")
threads = env_int("GUNICORN_THREADS", 32, minimum=1)
keepalive = 5
max_requests = 0


def worker_exit(server, worker):
    """A worker stopping normally writes the AuditEvents still in its buffer (smart_auth.audit.trail)."""
    from smart_auth.audit import trail

    trail.flush_at_exit()
