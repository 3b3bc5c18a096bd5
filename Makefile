# Two commands set everything up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_CONCURRENCY ?= 2
# Sync workers (behind a buffering proxy in production): each request is a new accept, so
# requests spread evenly over the workers. Measured with `make bench` on 2 cores, they match
# gthread's throughput and keep p99 lower: with keep-alive a client connection stays on the
# worker that accepted it, and 16 connections ended up 15 on one worker, 1 on the other.
# GUNICORN_WORKER_CLASS=gthread GUNICORN_THREADS=2 keeps connections alive instead.
# `make bench` starts gunicorn with these same settings.
GUNICORN_WORKER_CLASS ?= sync
GUNICORN_THREADS ?= 1
export WEB_CONCURRENCY GUNICORN_WORKER_CLASS GUNICORN_THREADS
# Local development serves without SMART unless the environment says otherwise.
export FHIR_AUTH_REQUIRED ?= false

.PHONY: run serve test migrate bench clean

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

run: migrate
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

serve: migrate
	$(BIN)/python manage.py collectstatic --noinput >/dev/null
	$(BIN)/gunicorn fhirproject.wsgi:application --bind $(HOST):$(PORT) \
		--workers $(WEB_CONCURRENCY) --worker-class $(GUNICORN_WORKER_CLASS) --threads $(GUNICORN_THREADS) \
		--keep-alive 5 --access-logfile - --max-requests 0

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
