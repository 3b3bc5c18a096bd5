# The Celery app is made current when Django starts, so jobs.dispatch can send a task by name.
from fhirproject.celery import app as celery_app

__all__ = ("celery_app",)
