"""WSGI entry point (gunicorn fhirproject.wsgi:application)."""
import os
import sys

import django

from fhirproject.env import SettingError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirproject.settings")
try:
    django.setup(set_prefix=False)  # as django.core.wsgi.get_wsgi_application does
    from fhirproject.handlers import split_application

    # /fhir through the API's lean middleware, the rest through the full stack (handlers.py).
    application = split_application()
except SettingError as exc:
    # One line instead of a traceback per worker; gunicorn stops when a worker cannot boot.
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(3)

from django.conf import settings  # noqa: E402 -- after the settings are known to load

if settings.FHIR_WARM_UP:
    from fhir_api.rest.warmup import warm_up

    warm_up()

if settings.FHIR_JOBS == "embedded":
    # No broker: this server process runs jobs itself, starting with any left queued (or
    # abandoned) by a process that stopped.
    from fhir_api.store.job_runner import wake_embedded

    wake_embedded()
