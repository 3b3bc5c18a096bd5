import logging

from django.apps import AppConfig


class SmartAuthConfig(AppConfig):
    name = "smart_auth"
    verbose_name = "SMART on FHIR authorization"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from smart_auth.signals import end_online_tokens

        user_logged_out.connect(end_online_tokens, dispatch_uid="smart_auth.end_online_tokens")

        from fhir_api.store import audit as store_audit
        from smart_auth.audit import receivers, trail

        store_audit.register_recorder(trail.describe_writes)
        receivers.connect()
        if not trail.enabled():
            logging.getLogger("smart_auth.audit").warning(
                "THE AUDIT TRAIL IS OFF (FHIR_AUDIT=false, FHIR_AUTH_REQUIRED=false): no AuditEvent is "
                "recorded. This is for benchmarks and development only, never for real data.")

        from fhir_api.store.signals import resource_written, resources_written
        from smart_auth.signals import consent_many_written, consent_written

        resource_written.connect(consent_written, dispatch_uid="smart_auth.consent_written")
        resources_written.connect(consent_many_written, dispatch_uid="smart_auth.consent_many_written")
