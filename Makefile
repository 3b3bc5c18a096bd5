# Two commands set everything up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_CONCURRENCY ?= 2
# Threaded workers (gunicorn.conf.py explains why): a client that trickles its request holds
# one of GUNICORN_THREADS threads, not a whole worker. `make bench` starts gunicorn with
# these same settings.
GUNICORN_WORKER_CLASS ?= gthread
GUNICORN_THREADS ?= 32
export HOST PORT WEB_CONCURRENCY GUNICORN_WORKER_CLASS GUNICORN_THREADS

.PHONY: run serve worker test migrate bench clean urls

# What to open once the server is up (make run and make serve print it when they start).
urls:
	@echo "Starting the FHIR server; open:"
	@echo "  front page          http://$(HOST):$(PORT)/"
	@echo "  FHIR base           http://$(HOST):$(PORT)/fhir"
	@echo "  CapabilityStatement http://$(HOST):$(PORT)/fhir/metadata"
	@echo "  API docs (OpenAPI)  http://$(HOST):$(PORT)/fhir/docs"
	@echo "  SMART discovery     http://$(HOST):$(PORT)/fhir/.well-known/smart-configuration"
	@echo "  admin               http://$(HOST):$(PORT)/admin/"
	@echo "  health / readiness  http://$(HOST):$(PORT)/healthz http://$(HOST):$(PORT)/readyz"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput

# Local development serves without SMART unless the environment says otherwise; `make serve`
# keeps the default (FHIR_AUTH_REQUIRED=true).
run: migrate urls
	$(BIN)/python manage.py collectstatic --noinput >/dev/null
	@if [ "$${FHIR_AUTH_REQUIRED:-false}" = "false" ]; then \
	  echo "*** make run: authentication is OFF (FHIR_AUTH_REQUIRED=false): local development only ***"; fi
	FHIR_AUTH_REQUIRED=$${FHIR_AUTH_REQUIRED:-false} $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production refuses the development DJANGO_SECRET_KEY (unless DJANGO_DEBUG is on); the
# settings check it when `migrate` starts, so a bad setting stops here with one line.
serve: export DJANGO_REQUIRE_SECRET_KEY = true
serve: migrate
	$(BIN)/python manage.py collectstatic --noinput >/dev/null
	@$(MAKE) --no-print-directory urls
	$(BIN)/gunicorn fhirproject.wsgi:application --config gunicorn.conf.py

# A job worker ($export, $reindex): a Celery worker when a broker is configured
# (CELERY_BROKER_URL or REDIS_URL), otherwise a worker polling the job table. Start as many as
# you like, on any machine that reaches the database (README "Jobs and workers").
WORKER_CONCURRENCY ?= 2
worker: migrate
	@if [ -n "$${CELERY_BROKER_URL:-$${REDIS_URL:-}}" ]; then \
	  exec $(BIN)/celery -A fhirproject worker --loglevel=INFO --concurrency=$(WORKER_CONCURRENCY); \
	else \
	  exec env FHIR_JOBS=database $(BIN)/python manage.py run_jobs; \
	fi

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
