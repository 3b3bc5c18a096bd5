"""WSGI entry point (gunicorn fhirproject.wsgi:application)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirproject.settings")
application = get_wsgi_application()

if os.environ.get("FHIR_WARM_UP", "true").lower() not in ("0", "false", "no", "off"):
    from fhir_api.rest.warmup import warm_up

    warm_up()
