"""Settings: every value comes from the environment, with a safe default (12-factor)."""
from __future__ import annotations

from pathlib import Path

import dj_database_url

from fhirproject.env import env_bool, env_int, env_list, env_str
from fhirproject.signing_key import load_signing_key

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
    "fhir_api.rest.cors.CorsMiddleware",
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
