from django.apps import AppConfig


class SmartAuthConfig(AppConfig):
    name = "smart_auth"
    verbose_name = "SMART on FHIR authorization"
