"""Settings: every value comes from the environment, with a safe default (12-factor)."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import dj_database_url

from fhirproject.env import SettingError, env_bool, env_float, env_int, env_limit, env_list, env_str, require
from fhirproject.signing_key import load_signing_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
# The key `make run` and the tests use when none is set. `make serve` sets
# DJANGO_REQUIRE_SECRET_KEY, which refuses it (and an empty key) unless DJANGO_DEBUG is on:
# sessions, password resets and signed values would be forgeable with a published key.
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-change-me"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
if env_bool("DJANGO_REQUIRE_SECRET_KEY", False) and not DEBUG:
    require(SECRET_KEY != DEVELOPMENT_SECRET_KEY,
            "DJANGO_SECRET_KEY is unset or the development key: set a long random value "
            "(e.g. openssl rand -hex 32) or DJANGO_DEBUG=true for a local try-out")
    require(len(SECRET_KEY) >= 32, "DJANGO_SECRET_KEY is too short: use at least 32 random characters")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
require(bool(ALLOWED_HOSTS), "ALLOWED_HOSTS is empty: name the host(s) the server answers to")

# SMART on FHIR: when true every FHIR request needs a bearer token. `make run` sets it to
# false for local development unless the environment says otherwise.
FHIR_AUTH_REQUIRED = env_bool("FHIR_AUTH_REQUIRED", True)
# The public base URL of the FHIR API, used in Bundle links and Location headers when set
# (behind a proxy); otherwise it is derived from each request.
FHIR_BASE_URL = env_str("FHIR_BASE_URL", "").rstrip("/")
require(not FHIR_BASE_URL or FHIR_BASE_URL.startswith(("http://", "https://")),
        f"FHIR_BASE_URL={FHIR_BASE_URL!r} must be an absolute http(s) URL")
FHIR_MAX_COUNT = env_int("FHIR_MAX_COUNT", 1000, minimum=1)
FHIR_DEFAULT_COUNT = env_int("FHIR_DEFAULT_COUNT", 20, minimum=1)
require(FHIR_DEFAULT_COUNT <= FHIR_MAX_COUNT,
        f"FHIR_DEFAULT_COUNT={FHIR_DEFAULT_COUNT} is larger than FHIR_MAX_COUNT={FHIR_MAX_COUNT}")
# Most resources one search page may add through _include/_revinclude.
FHIR_MAX_INCLUDE = env_int("FHIR_MAX_INCLUDE", 1000, minimum=1)
# What a patient's data allows where no Consent of theirs decides: permit (opt-out) or
# deny (opt-in). Enforced for requests with a token (FHIR_AUTH_REQUIRED); see smart_auth.consent.
FHIR_CONSENT_DEFAULT = env_str("FHIR_CONSENT_DEFAULT", "permit").strip().lower()
require(FHIR_CONSENT_DEFAULT in ("permit", "deny"),
        f"FHIR_CONSENT_DEFAULT={FHIR_CONSENT_DEFAULT!r} must be permit or deny")
# Conditional delete of several matches: allowed for every request when true, otherwise
# only when the client sends `Prefer: handling=multiple-delete`; never more than the max.
FHIR_CONDITIONAL_DELETE_MULTIPLE = env_bool("FHIR_CONDITIONAL_DELETE_MULTIPLE", False)
FHIR_CONDITIONAL_DELETE_MAX = env_int("FHIR_CONDITIONAL_DELETE_MAX", 100, minimum=1)
# Seconds a server process may go before it checks whether SearchParameter, ValueSet or
# CodeSystem resources were changed by another process (fhir_search.watch).
FHIR_DEFINITIONS_REFRESH = env_int("FHIR_DEFINITIONS_REFRESH", 5, minimum=0)
# What a write is checked for (fhir_api.store.validation): `standard` is structure, cardinality,
# primitive formats, required bindings and extension value types; `full` adds the FHIRPath
# invariants of the definitions and profiles (and extensible bindings as warnings).
# `$validate` always checks at `full`.
FHIR_VALIDATION_LEVEL = env_str("FHIR_VALIDATION_LEVEL", "standard").strip().lower()
require(FHIR_VALIDATION_LEVEL in ("standard", "full"),
        f"FHIR_VALIDATION_LEVEL={FHIR_VALIDATION_LEVEL!r} must be standard or full")
# Load the R4 definitions when a server process starts (wsgi.py), not on its first request.
FHIR_WARM_UP = env_bool("FHIR_WARM_UP", True)
# PostgreSQL: once a server process has written this many rows into a table (a large
# transaction, a bulk load, or many small writes), it runs ANALYZE on that table after the
# commit, so the planner never works from the statistics of an empty table (autovacuum
# may be off or behind after a bulk load). 0 turns it off (fhir_api.store.statistics).
FHIR_ANALYZE_ROWS = env_int("FHIR_ANALYZE_ROWS", 10000, minimum=0)
# The audit trail (smart_auth.audit): read and search events are buffered per process and
# written every FHIR_AUDIT_FLUSH_MS milliseconds (0: each at once, in the request), or as
# soon as FHIR_AUDIT_MAX_BUFFER are waiting. Writes are audited in their own transaction.
# Each flush costs about 2 ms of CPU (Python and PostgreSQL) and a handful of round trips
# whatever its size, so 100 ms rather than 20: at a few hundred reads a second per process
# the batches are 5x larger (README, "Durability and speed" of the audit trail).
FHIR_AUDIT_FLUSH_MS = env_int("FHIR_AUDIT_FLUSH_MS", 100, minimum=0, maximum=60000)
FHIR_AUDIT_MAX_BUFFER = env_int("FHIR_AUDIT_MAX_BUFFER", 2000, minimum=1)
# FHIR_AUDIT=false switches the audit trail off, for benchmarks and development only (the
# benchmark's baseline read). Refused while FHIR_AUTH_REQUIRED is on: a server that checks
# tokens always keeps its trail (smart_auth.audit.trail.enabled() also holds to that rule
# at run time), and every process that starts with it off logs a warning.
FHIR_AUDIT = env_bool("FHIR_AUDIT", True)
require(FHIR_AUDIT or not FHIR_AUTH_REQUIRED,
        "FHIR_AUDIT=false switches the audit trail off and is only for benchmarks and development "
        "with FHIR_AUTH_REQUIRED=false; a server that checks tokens always keeps its audit trail")
# Days AuditEvents are kept; only `manage.py audit_retention` deletes older ones. Unset: keep.
FHIR_AUDIT_RETENTION_DAYS = env_int("FHIR_AUDIT_RETENTION_DAYS", 0, minimum=0) or None

# Read by `make serve` (gunicorn.conf.py) rather than Django; checked here so a bad value
# fails with the same one line as every other setting.
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 2, minimum=1, maximum=256)
GUNICORN_WORKER_CLASS = env_str("GUNICORN_WORKER_CLASS", "gthread")
require(GUNICORN_WORKER_CLASS in ("sync", "gthread"),
        f"GUNICORN_WORKER_CLASS={GUNICORN_WORKER_CLASS!r}: use gthread (the default) or sync")
GUNICORN_THREADS = env_int("GUNICORN_THREADS", 32, minimum=1, maximum=1024)

# HTTPS (https://hl7.org/fhir/R4/security.html#http): behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER to the header it sets (X-Forwarded-Proto) so requests are known
# to be secure; SECURE_SSL_REDIRECT sends plain HTTP to HTTPS and turns on HSTS.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_SSL_REDIRECT else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER", "").strip()
require(_proxy_ssl_header.replace("-", "").replace("_", "").isalnum() or not _proxy_ssl_header,
        f"SECURE_PROXY_SSL_HEADER={_proxy_ssl_header!r} must be a header name such as X-Forwarded-Proto")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT

# Limits that protect the server (README "Limits and guarantees"); each answers with an
# OperationOutcome saying which limit was reached.
# Request bodies, after gzip/deflate decoding (413 beyond). Synthea patient Bundles reach 20 MB.
FHIR_MAX_BODY_BYTES = env_limit("FHIR_MAX_BODY_BYTES", 64 * 1024 * 1024)
# Django's own check of request.body uses the same number, so no path answers a bare 500.
DATA_UPLOAD_MAX_MEMORY_SIZE = FHIR_MAX_BODY_BYTES
# Entries of one batch/transaction Bundle, and the total size of the resources its answer carries.
FHIR_MAX_BUNDLE_ENTRIES = env_limit("FHIR_MAX_BUNDLE_ENTRIES", 20000)
FHIR_MAX_BUNDLE_RESPONSE_BYTES = env_limit("FHIR_MAX_BUNDLE_RESPONSE_BYTES", 64 * 1024 * 1024)
# Search: parameters (clauses, _include/_revinclude directives) per request, links in one chain,
# nesting of _has and of _filter parentheses, and the time one search may run in the database.
FHIR_SEARCH_MAX_CLAUSES = env_limit("FHIR_SEARCH_MAX_CLAUSES", 100)
FHIR_SEARCH_MAX_CHAIN = env_limit("FHIR_SEARCH_MAX_CHAIN", 4)
FHIR_SEARCH_MAX_HAS_DEPTH = env_limit("FHIR_SEARCH_MAX_HAS_DEPTH", 4)
FHIR_SEARCH_MAX_FILTER_DEPTH = env_limit("FHIR_SEARCH_MAX_FILTER_DEPTH", 32)
FHIR_SEARCH_TIMEOUT_MS = env_limit("FHIR_SEARCH_TIMEOUT_MS", 20000)
# JSON Patch / FHIRPath Patch: operations per patch and the size of the patched resource.
FHIR_PATCH_MAX_OPERATIONS = env_limit("FHIR_PATCH_MAX_OPERATIONS", 1000)
FHIR_PATCH_MAX_BYTES = env_limit("FHIR_PATCH_MAX_BYTES", 16 * 1024 * 1024)
# $reindex: resources per batch (each batch is one transaction holding its rows' locks).
FHIR_REINDEX_MAX_BATCH = env_limit("FHIR_REINDEX_MAX_BATCH", 1000)

# -- Background jobs ($export, $reindex): fhir_api.store.jobs --------------------------------
# A broker URL (Redis) makes Celery the queue: `make worker` starts its workers. Without one,
# each server process runs jobs in a background thread (embedded), or, with
# FHIR_JOBS=database, separate `manage.py run_jobs` processes poll the job table.
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or REDIS_URL
require(not CELERY_BROKER_URL or CELERY_BROKER_URL.startswith(("redis://", "rediss://", "amqp://", "memory://")),
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} must be a redis:// (or amqp://) URL")
FHIR_JOBS = env_str("FHIR_JOBS", "celery" if CELERY_BROKER_URL else "embedded")
require(FHIR_JOBS in ("celery", "database", "embedded"),
        f"FHIR_JOBS={FHIR_JOBS!r}: use embedded (the default), database or celery")
require(FHIR_JOBS != "celery" or bool(CELERY_BROKER_URL),
        "FHIR_JOBS=celery needs CELERY_BROKER_URL (or REDIS_URL)")
# Attempts a job gets (a worker that died, or an error) before it is failed with the reason.
FHIR_JOB_MAX_ATTEMPTS = env_int("FHIR_JOB_MAX_ATTEMPTS", 3, minimum=1, maximum=100)
# A running job's worker writes a heartbeat this often; a job without one for
# FHIR_JOB_STALE_SECONDS is taken to have lost its worker and is queued again.
FHIR_JOB_HEARTBEAT_SECONDS = env_float("FHIR_JOB_HEARTBEAT_SECONDS", 5, minimum=0.05, maximum=3600)
FHIR_JOB_STALE_SECONDS = env_float("FHIR_JOB_STALE_SECONDS", 60, minimum=0.2, maximum=86400)
require(FHIR_JOB_STALE_SECONDS > 2 * FHIR_JOB_HEARTBEAT_SECONDS,
        "FHIR_JOB_STALE_SECONDS must be more than twice FHIR_JOB_HEARTBEAT_SECONDS")
# Seconds an idle database-polling worker waits before it looks for new jobs again.
FHIR_JOB_POLL_SECONDS = env_float("FHIR_JOB_POLL_SECONDS", 1, minimum=0.05, maximum=60)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "fhir")

# -- Bulk Data $export ------------------------------------------------------------------------
# Hours an export's files stay available after it completes.
BULK_EXPORT_TTL_HOURS = env_float("BULK_EXPORT_TTL_HOURS", 24, minimum=0.001, maximum=24 * 365)
# Where export files are written: the `bulk_export` storage of STORAGES (below), whose backend
# class BULK_EXPORT_STORAGE names (django-storages style, e.g. storages.backends.s3.S3Storage)
# with BULK_EXPORT_STORAGE_OPTIONS (JSON) as its OPTIONS. The local filesystem under
# BULK_EXPORT_DIR by default; with another backend BULK_EXPORT_DIR only holds files being written.
BULK_EXPORT_DIR = env_str("BULK_EXPORT_DIR", str(BASE_DIR / "var" / "bulk-export"))
_FILE_SYSTEM_STORAGE = "django.core.files.storage.FileSystemStorage"
BULK_EXPORT_STORAGE = env_str("BULK_EXPORT_STORAGE", _FILE_SYSTEM_STORAGE)
try:
    BULK_EXPORT_STORAGE_OPTIONS = json.loads(env_str("BULK_EXPORT_STORAGE_OPTIONS", "") or "{}")
except ValueError:
    raise SettingError("BULK_EXPORT_STORAGE_OPTIONS is not JSON (e.g. {\"bucket_name\": \"exports\"})") from None
require(isinstance(BULK_EXPORT_STORAGE_OPTIONS, dict), "BULK_EXPORT_STORAGE_OPTIONS must be a JSON object")
if BULK_EXPORT_STORAGE == _FILE_SYSTEM_STORAGE:
    BULK_EXPORT_STORAGE_OPTIONS.setdefault("location", BULK_EXPORT_DIR)
STORAGES = {
    "default": {"BACKEND": _FILE_SYSTEM_STORAGE},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "bulk_export": {"BACKEND": BULK_EXPORT_STORAGE, "OPTIONS": BULK_EXPORT_STORAGE_OPTIONS},
}
# Most resources in one output file (a type with more gets several files); each file is a
# checkpoint, so a worker that dies redoes at most one file.
BULK_EXPORT_FILE_RESOURCES = env_int("BULK_EXPORT_FILE_RESOURCES", 100000, minimum=1)
# A client polling a running export sooner than this after its last poll gets 429.
BULK_EXPORT_POLL_SECONDS = env_float("BULK_EXPORT_POLL_SECONDS", 1, minimum=0, maximum=3600)
# The Retry-After a running export's status answers with.
BULK_EXPORT_RETRY_AFTER = env_int("BULK_EXPORT_RETRY_AFTER", 2, minimum=1, maximum=3600)

INSTALLED_APPS = [
    # The staff console: Django's admin with the console's own site (admin_ui.site).
    "admin_ui.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # runserver (make run) leaves static files to WhiteNoise, as gunicorn (make serve) does.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_filters",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "rest_framework",
    "oauth2_provider",
    "fhir_api",
    "fhir_search",
    "smart_auth",
    "admin_ui",
]

MIDDLEWARE = [
    # Outermost: it sees every answer (also those the middlewares below produce), gives each
    # request its X-Request-ID before anything can render an OperationOutcome, and times it.
    "fhirproject.request_log.RequestObservationMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and scripts) from the app itself: no separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Console headers, and Secure on the session and CSRF cookies over TLS: above the session
    # and CSRF middleware, so it sees the cookies they set.
    "admin_ui.security.ConsoleSecurityMiddleware",
    # Inside SecurityMiddleware, so the OperationOutcomes it substitutes get nosniff and HSTS too.
    "fhir_api.rest.middleware.FhirAnswerMiddleware",
    "fhir_api.rest.cors.CorsMiddleware",
    # Read-only FHIR interactions read from a replica (DATABASE_REPLICA_URLS; absent otherwise).
    "fhirproject.replicas.ReplicaReadMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a refused (throttled) sign-in into the lockout answer.
    "axes.middleware.AxesMiddleware",
]
X_FRAME_OPTIONS = "DENY"
# The FHIR API (/fhir) runs through these only (fhirproject/handlers.py): bearer tokens, no
# sessions, cookies, CSRF forms or sign-in throttling, and each layer costs every request.
# Its answers get the same headers as the site's (tests/fhirproject/test_handlers.py).
FHIR_API_MIDDLEWARE = [
    "fhirproject.request_log.RequestObservationMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "fhir_api.rest.middleware.FhirAnswerMiddleware",
    "fhir_api.rest.cors.CorsMiddleware",
    # Read-only FHIR interactions read from a replica (DATABASE_REPLICA_URLS; absent otherwise).
    "fhirproject.replicas.ReplicaReadMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# -- the staff console (/admin) -------------------------------------------------------------
# Sign-ins (the console's and the /auth sign-in screen's) are throttled by django-axes, per
# account and per client address separately: ADMIN_LOGIN_FAILURES failures lock that account,
# or that address, for ADMIN_LOCKOUT_MINUTES.
AUTHENTICATION_BACKENDS = [
    "admin_ui.security.SignInThrottle",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURES", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = env_int("ADMIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60) / 60
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin_ui/locked_out.html"
AXES_VERBOSE = False
# Two-factor sign-in (TOTP): optional for staff; with ADMIN_REQUIRE_2FA superusers must enrol
# a device and use it at every sign-in before any console page opens.
ADMIN_REQUIRE_2FA = env_bool("ADMIN_REQUIRE_2FA", False)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "FHIR server")
# Session cookies are HttpOnly; over TLS (request.is_secure(), also behind a proxy that sets
# SECURE_PROXY_SSL_HEADER) admin_ui.security marks the session and CSRF cookies Secure.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Staff sessions end with the browser and after ADMIN_SESSION_HOURS.
SESSION_COOKIE_AGE = env_int("ADMIN_SESSION_HOURS", 8, minimum=1, maximum=24 * 30) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

ROOT_URLCONF = "fhirproject.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "fhirproject.wsgi.application"

# SQLite (embedded) unless DATABASE_URL names another database, e.g.
# postgres://user:pass@host:5432/fhir. PostgreSQL connections are pooled (psycopg 3 pool).
DATABASE_URL = env_str("DATABASE_URL", "")
# Seconds to wait for a new PostgreSQL connection (libpq connect_timeout), and for a free
# pooled connection: while the database is down requests answer 503 after at most this.
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=2, maximum=300)
DATABASE_POOL_TIMEOUT = env_float("DATABASE_POOL_TIMEOUT", 10, minimum=0.1, maximum=300)
DATABASE_POOL = env_bool("DATABASE_POOL", True)
DATABASE_POOL_MIN = env_int("DATABASE_POOL_MIN", 1, minimum=0)
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 8, minimum=1)
require(DATABASE_POOL_MIN <= DATABASE_POOL_MAX,
        f"DATABASE_POOL_MIN={DATABASE_POOL_MIN} is larger than DATABASE_POOL_MAX={DATABASE_POOL_MAX}")
DATABASE_HEALTH_CHECKS = env_bool("DATABASE_HEALTH_CHECKS", False)
# Django's .iterator() reads large results (bulk export) through a server-side cursor, which
# outlives its transaction: a PgBouncer in transaction-pooling mode cannot carry one, so
# behind one set this false (results are then fetched whole; README "PgBouncer").
DATABASE_SERVER_SIDE_CURSORS = env_bool("DATABASE_SERVER_SIDE_CURSORS", True)
# The hottest reads are prepared statements on PostgreSQL (fhir_api/store/prepared.py);
# false for a transaction-pooling PgBouncer older than 1.21 (README "PgBouncer").
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 60, minimum=0)
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    except ValueError as exc:
        raise SettingError(f"DATABASE_URL is not a database URL ({exc})") from None
    require(DATABASES["default"]["ENGINE"].endswith(("postgresql", "sqlite3")),
            "DATABASE_URL must be a postgres:// (or sqlite://) URL")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # WAL lets readers go on while one writer commits; IMMEDIATE takes the write
            # lock when a transaction starts, so two writers queue instead of deadlocking.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    # Validate pooled connections before handing them out (one round trip): after a database
    # restart the pool's old connections are dead, and without the check each one fails a
    # request (503) before the pool replaces it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = DATABASE_HEALTH_CHECKS
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = not DATABASE_SERVER_SIDE_CURSORS
    if DATABASE_POOL:
        _options["pool"] = {"min_size": DATABASE_POOL_MIN, "max_size": DATABASE_POOL_MAX,
                            "timeout": DATABASE_POOL_TIMEOUT}
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = CONN_MAX_AGE

# -- Read replicas and connection poolers (README "Running more than one machine") -----------
# PostgreSQL streaming replicas (comma-separated URLs): searches, reads, vreads, history,
# $everything and bulk exports read from them (fhir_api.store.routing); writes, transactions,
# tokens, jobs and sessions stay on the primary. A client that wrote is read from the primary
# for DATABASE_REPLICA_PIN_SECONDS (fhirproject.replicas): its own writes are there at once,
# on a replica only after the replica replays them.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
DATABASE_REPLICA_PIN_SECONDS = env_float("DATABASE_REPLICA_PIN_SECONDS", 5, minimum=0, maximum=3600)
# Seconds to wait for a replica's connection; one that cannot be reached is left out for
# DATABASE_REPLICA_RETRY_SECONDS (reads go to another replica, or the primary).
DATABASE_REPLICA_TIMEOUT = env_int("DATABASE_REPLICA_TIMEOUT", 2, minimum=2, maximum=300)
DATABASE_REPLICA_RETRY_SECONDS = env_float("DATABASE_REPLICA_RETRY_SECONDS", 10, minimum=0.1, maximum=3600)
# A bulk export waits this long for a replica to replay what the primary had committed when
# the export started (its transaction time); otherwise it reads the primary.
DATABASE_REPLICA_CATCH_UP_SECONDS = env_float("DATABASE_REPLICA_CATCH_UP_SECONDS", 10, minimum=0, maximum=3600)
DATABASE_REPLICA_ALIASES: list[str] = []
if DATABASE_REPLICA_URLS:
    require(DATABASES["default"]["ENGINE"].endswith("postgresql"),
            "DATABASE_REPLICA_URLS needs a PostgreSQL primary in DATABASE_URL")
    # The pin must be seen by every server process the client's next request may reach.
    require(bool(REDIS_URL) or DATABASE_REPLICA_PIN_SECONDS == 0,
            "DATABASE_REPLICA_URLS needs REDIS_URL: the read-your-writes pin is shared by every server "
            "process through Redis (or set DATABASE_REPLICA_PIN_SECONDS=0 to let a client miss its own "
            "writes for as long as the replicas lag)")
    for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
        try:
            _replica = dj_database_url.parse(_url)
        except ValueError as exc:
            raise SettingError(f"DATABASE_REPLICA_URLS entry {_number} is not a database URL ({exc})") from None
        require(_replica["ENGINE"].endswith("postgresql"),
                f"DATABASE_REPLICA_URLS entry {_number} must be a postgres:// URL")
        _replica_options = {**DATABASES["default"].get("OPTIONS", {}), **_replica.get("OPTIONS", {})}
        _replica_options["connect_timeout"] = DATABASE_REPLICA_TIMEOUT
        if "pool" in _replica_options:
            _replica_options["pool"] = {**_replica_options["pool"], "timeout": DATABASE_REPLICA_TIMEOUT}
        _replica.update(OPTIONS=_replica_options, CONN_HEALTH_CHECKS=True,
                        DISABLE_SERVER_SIDE_CURSORS=not DATABASE_SERVER_SIDE_CURSORS,
                        CONN_MAX_AGE=DATABASES["default"].get("CONN_MAX_AGE", 0),
                        # Tests read the primary's test database through a replica alias.
                        TEST={"MIRROR": "default"})
        DATABASES[f"replica{_number}"] = _replica
        DATABASE_REPLICA_ALIASES.append(f"replica{_number}")
DATABASE_ROUTERS = ["fhir_api.store.routing.ReplicaRouter"] if DATABASE_REPLICA_ALIASES else []

# A direct connection to the primary for what a transaction-pooling PgBouncer cannot carry:
# the token cache's LISTEN (smart_auth.token_cache). Unset: DATABASE_URL.
DATABASE_DIRECT_URL = env_str("DATABASE_DIRECT_URL", "")
DATABASE_DIRECT: dict = {}
if DATABASE_DIRECT_URL:
    try:
        DATABASE_DIRECT = dj_database_url.parse(DATABASE_DIRECT_URL)
    except ValueError as exc:
        raise SettingError(f"DATABASE_DIRECT_URL is not a database URL ({exc})") from None
    require(DATABASE_DIRECT["ENGINE"].endswith("postgresql") and DATABASES["default"]["ENGINE"].endswith("postgresql"),
            "DATABASE_DIRECT_URL must be a postgres:// URL, with a PostgreSQL DATABASE_URL")

# Caches (Django's cache framework: the replica pins) in Redis when there is one, so every
# server process shares them; otherwise in each process's memory.
if REDIS_URL:
    CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "fhir",
        # A Redis that hangs must not hang requests: fhirproject.replicas reads the primary then.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
# WhiteNoise serves STATIC_ROOT (filled by collectstatic in `make run` and `make serve`); it
# also finds files in the apps directly, so a checkout that never ran collectstatic (tests,
# a bare runserver) still has its styles.
WHITENOISE_USE_FINDERS = True

# -- SMART on FHIR / OAuth 2.0 (django-oauth-toolkit, extended through its hooks) ----------
# https://hl7.org/fhir/smart-app-launch/ ; smart_auth owns the models and the validator.
OAUTH2_PROVIDER_APPLICATION_MODEL = "smart_auth.Client"
# DOT's own token models, named so migrations can refer to them as swappable models.
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
SMART_SIGNING_KEY, SMART_SIGNING_KEY_IS_DEV = load_signing_key(
    env_str("SMART_SIGNING_KEY", ""), env_str("SMART_SIGNING_KEY_FILE", ""), BASE_DIR / "var" / "smart-signing-key.pem"
)
# Seconds an access token lives (SMART: at most 3600); backend-services tokens at most 300.
SMART_ACCESS_TOKEN_SECONDS = env_int("SMART_ACCESS_TOKEN_SECONDS", 3600)
SMART_BACKEND_TOKEN_SECONDS = env_int("SMART_BACKEND_TOKEN_SECONDS", 300)
SMART_REFRESH_TOKEN_SECONDS = env_int("SMART_REFRESH_TOKEN_SECONDS", 90 * 24 * 3600)
# Backend services may register a JWKS URL; fetching one from a private, loopback or
# link-local address is refused unless this is on (local development and tests).
SMART_JWKS_ALLOW_PRIVATE = env_bool("SMART_JWKS_ALLOW_PRIVATE", False)
# Types outside the Patient compartment that patient/ scopes may read and search in full
# (not patient data; US Core apps read the Practitioner or Medication a record names).
SMART_PATIENT_SHARED_TYPES = frozenset(env_list("SMART_PATIENT_SHARED_TYPES", [
    "Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Substance",
    "HealthcareService", "Endpoint",
]))
# On PostgreSQL each process remembers token lookups and forgets them when the database
# notifies a change to tokens, clients or users (smart_auth.token_cache); off: look up always.
SMART_TOKEN_CACHE = env_bool("SMART_TOKEN_CACHE", True)
# Origins allowed to call the FHIR API from a browser, besides those of registered apps.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
LOGIN_URL = "smart:login"
# Where apps find the styles of the host EHR (the token response's smart_style_url); blank: none.
SMART_STYLE_URL = env_str("SMART_STYLE_URL", "")

OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "smart_auth.validator.SmartValidator",
    "SCOPES_BACKEND_CLASS": "smart_auth.scopes.SmartScopes",
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # S256 only, never plain
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,  # bearer tokens in the header only
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,  # only a SHA-256 of each token is stored
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ROTATE_REFRESH_TOKEN": True,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": SMART_ACCESS_TOKEN_SECONDS,
    "ID_TOKEN_EXPIRE_SECONDS": SMART_ACCESS_TOKEN_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": SMART_REFRESH_TOKEN_SECONDS,
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": SMART_SIGNING_KEY,
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "client_credentials", "refresh_token"],
    "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "private_key_jwt"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "private_key_jwt"],
    "ALLOWED_REDIRECT_URI_SCHEMES": env_list("SMART_REDIRECT_URI_SCHEMES", ["http", "https"]),
    "REQUEST_APPROVAL_PROMPT": "force",
}

REST_FRAMEWORK = {
    # FHIR views render their own bytes; DRF contributes routing and request parsing only.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "fhir_api.rest.responses.exception_handler",
}

LOG_LEVEL = env_str("LOG_LEVEL", "WARNING").upper()
require(LOG_LEVEL in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        f"LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
# One line per request (fhirproject.request_log) at INFO on its own logger, so it is written
# whatever LOG_LEVEL says unless LOG_REQUESTS=false; JSON lines with LOG_FORMAT=json.
LOG_REQUESTS = env_bool("LOG_REQUESTS", True)
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
require(LOG_FORMAT in ("text", "json"), f"LOG_FORMAT={LOG_FORMAT!r}: use text or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"fhir": {"()": "fhirproject.logformat.JsonFormatter" if LOG_FORMAT == "json"
                            else "fhirproject.logformat.TextFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "fhir"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"fhir.requests": {"level": "INFO" if LOG_REQUESTS else "WARNING"}},
}

# GET /metrics (Prometheus): answered to these client addresses or networks, and to a
# request carrying `Authorization: Bearer <METRICS_BEARER_TOKEN>` when that is set; refused
# (403) to everyone else. Behind a proxy every request comes from the proxy's address: use
# the bearer secret, or let the proxy refuse /metrics from outside.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
try:
    METRICS_ALLOWED_NETWORKS = tuple(ipaddress.ip_network(item, strict=False) for item in METRICS_ALLOWED_IPS)
except ValueError as exc:
    raise SettingError(f"METRICS_ALLOWED_IPS: {exc}") from None
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN", "")
require(not METRICS_BEARER_TOKEN or len(METRICS_BEARER_TOKEN) >= 16,
        "METRICS_BEARER_TOKEN is too short: use 16 characters or more")
