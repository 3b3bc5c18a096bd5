"""Django finds an app's models in `<app>.models`; the store floor defines them."""
from fhir_api.store.models import Job, LoadedFile, Resource, ResourceVersion

__all__ = ["Job", "LoadedFile", "Resource", "ResourceVersion"]
