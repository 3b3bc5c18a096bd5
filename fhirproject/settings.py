"""Settings: every value comes from the environment, with a safe default (12-factor)."""
from __future__ import annotations

from pathlib import Path

import dj_database_url

from fhirproject.env import env_bool, env_int, env_limit, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("DJANGO_REQUIRE_SECRET_KEY", False):
        raise RuntimeError("DJANGO_SECRET_KEY must be set in production")
    # A development key: fine for make run and tests, never for production (see README).
    SECRET_KEY = "dev-insecure-secret-key-change-me"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

# SMART on FHIR: when true every FHIR request needs a bearer token. `make run` sets it to
# false for local development unless the environment says otherwise.
FHIR_AUTH_REQUIRED = env_bool("FHIR_AUTH_REQUIRED", True)
# The public base URL of the FHIR API, used in Bundle links and Location headers when set
# (behind a proxy); otherwise it is derived from each request.
FHIR_BASE_URL = env_str("FHIR_BASE_URL", "").rstrip("/")
FHIR_DEFAULT_COUNT = env_int("FHIR_DEFAULT_COUNT", 20)
FHIR_MAX_COUNT = env_int("FHIR_MAX_COUNT", 1000)
# Most resources one search page may add through _include/_revinclude.
FHIR_MAX_INCLUDE = env_int("FHIR_MAX_INCLUDE", 1000)
# Conditional delete of several matches: allowed for every request when true, otherwise
# only when the client sends `Prefer: handling=multiple-delete`; never more than the max.
FHIR_CONDITIONAL_DELETE_MULTIPLE = env_bool("FHIR_CONDITIONAL_DELETE_MULTIPLE", False)
FHIR_CONDITIONAL_DELETE_MAX = env_int("FHIR_CONDITIONAL_DELETE_MAX", 100)
# Seconds a server process may go before it checks whether SearchParameter, ValueSet or
# CodeSystem resources were changed by another process (fhir_search.watch).
FHIR_DEFINITIONS_REFRESH = env_int("FHIR_DEFINITIONS_REFRESH", 5)

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

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "oauth2_provider",
    "fhir_api",
    "fhir_search",
    "smart_auth",
    "admin_ui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
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
    if env_bool("DATABASE_POOL", True):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN", 1),
            "max_size": env_int("DATABASE_POOL_MAX", 8),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)

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

REST_FRAMEWORK = {
    # FHIR views render their own bytes; DRF contributes routing and request parsing only.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "fhir_api.rest.responses.exception_handler",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
