"""Where export files live: a Django storage backend (django-storages style).

BULK_EXPORT_STORAGE names the class (the local filesystem under BULK_EXPORT_DIR by default;
e.g. `storages.backends.s3.S3Storage` with django-storages installed), BULK_EXPORT_STORAGE_OPTIONS
its options. Files are written to a local spool first and saved whole, so a reader never
sees half a file and any backend works; the server streams them back from the same backend.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.utils.module_loading import import_string


def export_storage() -> Storage:
    backend = import_string(settings.BULK_EXPORT_STORAGE)
    options = dict(settings.BULK_EXPORT_STORAGE_OPTIONS)
    if issubclass(backend, FileSystemStorage):
        options.setdefault("location", settings.BULK_EXPORT_DIR)
    return backend(**options)


def spool_dir() -> Path:
    """A local folder for files being written (next to the files on the local filesystem, so
    saving one is a rename)."""
    storage = export_storage()
    base = Path(storage.location) if isinstance(storage, FileSystemStorage) else Path(settings.BULK_EXPORT_DIR)
    folder = base / ".spool"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_folder(prefix: str) -> None:
    """Delete every file under `prefix/` (an export's files)."""
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
