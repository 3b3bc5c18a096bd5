"""Where export files live: a Django storage (the `bulk_export` alias of STORAGES).

https://docs.djangoproject.com/en/5.2/ref/settings/#storages -- BULK_EXPORT_STORAGE names the
backend class and BULK_EXPORT_STORAGE_OPTIONS its options (JSON), django-storages style: the
local filesystem under BULK_EXPORT_DIR by default, another folder, or object storage such as
`storages.backends.s3.S3Storage`. Files are written to a local spool first and saved whole,
so a reader never sees half a file and any backend works (on the local filesystem saving is
a rename). The server always serves the files itself, streamed from the backend, so the same
client check guards them whatever the backend (fhir_api.rest.views.jobs); expiry and DELETE
remove them through the same storage API.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

ALIAS = "bulk_export"


def export_storage() -> Storage:
    return storages[ALIAS]


def spool_dir() -> Path:
    """A local folder for files being written: inside the export folder on the local
    filesystem (so saving a file is a rename), under BULK_EXPORT_DIR for any other backend."""
    storage = export_storage()
    base = Path(storage.location) if isinstance(storage, FileSystemStorage) else Path(settings.BULK_EXPORT_DIR)
    folder = base / ".spool"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_folder(prefix: str) -> None:
    """Delete every file under `prefix/` (an export's files), in any backend."""
    storage = export_storage()
    try:
        _, files = storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        storage.delete(f"{prefix}/{name}")
    if isinstance(storage, FileSystemStorage):
        try:
            Path(storage.path(prefix)).rmdir()
        except OSError:
            pass
