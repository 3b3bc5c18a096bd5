"""Loading files into the store: transaction/batch Bundles, ndjson, single resources.

Used by `manage.py load`. Each file is loaded in one database transaction, together with
the row that records it as loaded (fhir_api.store.models.LoadedFile, what `--resume`
skips), so a file is either wholly in the database or not at all: never half a Bundle.
Bundles go through the same code as `POST [base]` (fhir_api.rest.bundles), so a Synthea
patient Bundle's conditional references (`Organization?identifier=...`) resolve as they
would over HTTP, against hospital and practitioner files loaded before it (`ordered`).
A batch Bundle is loaded all-or-nothing too: one failed entry fails the file.
ndjson lines and single resources with an id are updates (created with that id when new),
without one creates.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from fhir_api.rest import bundles
from fhir_api.store import jsonio, repository
from fhir_api.store.errors import BadRequest, FhirError
from fhir_api.store.models import LoadedFile

SUFFIXES = (".json", ".ndjson")
# Synthea writes the organizations and practitioners that patient Bundles refer to
# (conditionally) into these files: they are loaded before everything else.
FIRST_PREFIXES = ("hospitalInformation", "practitionerInformation")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """The files to load under these paths (folders recursively), each once."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix in SUFFIXES:
                    found[child.resolve()] = None
        elif path.is_file():
            found[path.resolve()] = None
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(found)


def is_first(path: Path) -> bool:
    return path.name.startswith(FIRST_PREFIXES)


def ordered(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to load first, the rest): Synthea's hospital and practitioner files first."""
    return [f for f in files if is_first(f)], [f for f in files if not is_first(f)]


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@dataclass
class Outcome:
    path: str
    resources: int = 0
    skipped: bool = False
    error: dict[str, Any] | None = None  # an OperationOutcome when the file failed


def _request() -> HttpRequest:
    """The request Bundle processing runs under: the loader is an operator's tool, with no
    token (as with authentication off) and the configured base URL."""
    request = HttpRequest()
    request.method = "POST"
    request.META.update({"SERVER_NAME": "localhost", "SERVER_PORT": "80", "HTTP_HOST": "localhost",
                         "HTTP_PREFER": "return=minimal"})
    request.access = None
    return request


def _base() -> str:
    return settings.FHIR_BASE_URL or "http://localhost/fhir"


def _write_one(resource: Any, where: str) -> int:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise BadRequest(f"{where}: not a FHIR resource (no resourceType)")
    rtype = resource["resourceType"]
    if resource.get("id") is not None:
        repository.update(rtype, str(resource["id"]), resource)
    else:
        repository.create(rtype, resource)
    return 1


def _load_bundle(bundle: dict[str, Any]) -> int:
    kind = bundle.get("type")
    if kind in ("transaction", "batch"):
        answer = bundles.process(_request(), bundle, _base())
        failed = [(i, e["response"]) for i, e in enumerate(answer["entry"])
                  if not str(e["response"].get("status", "")).startswith("2")]
        if failed:
            index, response = failed[0]
            outcome = response.get("outcome") or {}
            issues = outcome.get("issue") or [{"severity": "error", "code": "processing",
                                               "diagnostics": response.get("status", "")}]
            issues = [{**i, "diagnostics": f"Bundle.entry[{index}]: {i.get('diagnostics', '')}"} for i in issues]
            raise FhirError(f"Bundle.entry[{index}] failed", issues=issues)
        return len(answer["entry"])
    return sum(_write_one(e.get("resource"), f"Bundle.entry[{i}]") for i, e in enumerate(bundle.get("entry") or []))


def _load_contents(path: Path) -> int:
    if path.suffix == ".ndjson":
        count = 0
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        resource = jsonio.loads(line)
                    except ValueError as exc:
                        raise BadRequest(f"line {number}: not JSON ({exc})", code="structure") from None
                    try:
                        count += _write_one(resource, f"line {number}")
                    except FhirError as error:
                        error.diagnostics = f"line {number}: {error.diagnostics}"
                        if error.issues:
                            error.issues = [{**i, "diagnostics": f"line {number}: {i.get('diagnostics', '')}"}
                                            for i in error.issues]
                        raise
        return count
    try:
        content = jsonio.loads(path.read_bytes())
    except ValueError as exc:
        raise BadRequest(f"not JSON ({exc})", code="structure") from None
    if isinstance(content, dict) and content.get("resourceType") == "Bundle":
        return _load_bundle(content)
    return _write_one(content, "the file")


def load_file(path: Path, resume: bool = False) -> Outcome:
    """Load one file in one transaction (recording it as loaded); its OperationOutcome on failure."""
    outcome = Outcome(str(path))
    try:
        sha = digest(path)
        if resume and LoadedFile.objects.filter(sha256=sha).exists():
            outcome.skipped = True
            return outcome
        with transaction.atomic():
            outcome.resources = _load_contents(path)
            LoadedFile.objects.update_or_create(sha256=sha, defaults={"path": str(path),
                                                                      "resources": outcome.resources})
    except FhirError as error:
        outcome.error = error.outcome()
    except OSError as exc:
        outcome.error = FhirError(f"cannot read the file: {exc}", code="exception").outcome()
    return outcome
