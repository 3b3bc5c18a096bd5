# Two commands set everything up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_CONCURRENCY ?= 2
# gthread workers keep client connections alive and let a second request run while the
# first waits on PostgreSQL; 2 threads per worker is enough on 2 cores (more only add GIL
# contention and p99 latency). `make bench` starts gunicorn with these same settings.
GUNICORN_WORKER_CLASS ?= gthread
GUNICORN_THREADS ?= 2
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
