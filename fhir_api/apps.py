from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "fhir_api"
    verbose_name = "FHIR resources"

    def ready(self) -> None:
        # The kinds of job register with the store's job table (fhir_api.store.jobs), so any
        # worker process that starts Django can run them.
        from fhir_api.bulk import export, reindex  # noqa: F401
        from fhir_api.store import job_runner  # noqa: F401  (registers the embedded runner's wake-up)

