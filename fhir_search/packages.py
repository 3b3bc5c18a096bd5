"""Loading a FHIR NPM package (an implementation guide's definitions) into the server.

https://hl7.org/fhir/packages.html -- a package is a gzipped tarball with `package/package.json`
and one JSON resource per file in `package/` (examples live in `package/example/` and are left
out). Its conformance resources are written through the one writer, as updates with their own
ids (loading the same package again changes nothing but versions): code systems first (their
concepts are indexed), then value sets, StructureDefinitions (profiles and extensions, which
validation then uses), SearchParameters (active for new writes at once), and the rest. After
the load, the resource types the new SearchParameters apply to are reindexed in this process
(there is no job queue yet), so they find what was stored before.
"""
from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any

import orjson
from django.db import transaction

from fhir_api.store import repository
from fhir_api.store.errors import FhirError
from fhir_api.store.structure import resource_types
from fhir_search.reindexing import reindex

# The order of loading: what later resources refer to comes first.
ORDER = ("CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition", "SearchParameter")
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # one JSON file of a package


class PackageError(ValueError):
    """The file is not a FHIR package this server can load."""


@dataclass
class Loaded:
    name: str
    version: str
    written: dict[str, int] = field(default_factory=dict)  # per resource type
    refused: list[str] = field(default_factory=list)  # "file: reason"
    reindexed: int = 0


def _read(archive: IO[bytes]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    try:
        tar = tarfile.open(fileobj=archive, mode="r:*")
    except tarfile.TarError as exc:
        raise PackageError(f"not a (gzipped) tar file: {exc}") from None
    manifest: dict[str, Any] | None = None
    resources: list[tuple[str, dict[str, Any]]] = []
    with tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            # Only regular files directly in package/ (no links, no examples, no other folders).
            if not member.isfile() or len(path.parts) != 2 or path.parts[0] != "package" or path.suffix != ".json":
                continue
            if member.size > MAX_MEMBER_BYTES:
                raise PackageError(f"{member.name} is larger than {MAX_MEMBER_BYTES} bytes")
            raw = tar.extractfile(member)
            try:
                data = orjson.loads(raw.read()) if raw is not None else None
            except orjson.JSONDecodeError as exc:
                raise PackageError(f"{member.name} is not JSON: {exc}") from None
            if path.name == "package.json":
                manifest = data
            elif isinstance(data, dict) and isinstance(data.get("resourceType"), str) and path.name != ".index.json":
                resources.append((path.name, data))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("name"), str):
        raise PackageError("package/package.json with a name is missing: not a FHIR package")
    return manifest, resources


def _ordered(resources: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(resources, key=lambda r: (rank.get(r[1]["resourceType"], len(ORDER)), r[0]))


def load(archive: IO[bytes], *, reindex_after: bool = True,
         on_resource: Callable[[str, str], None] | None = None) -> Loaded:
    """Load a package; each resource in its own transaction (one bad file does not stop the rest)."""
    manifest, resources = _read(archive)
    fhir_versions = manifest.get("fhirVersions") or ([manifest["fhirVersion"]] if "fhirVersion" in manifest else [])
    if fhir_versions and not any(str(v).startswith("4.0") for v in fhir_versions):
        raise PackageError(f"the package is for FHIR {', '.join(map(str, fhir_versions))}, not R4 (4.0.x)")
    loaded = Loaded(manifest["name"], str(manifest.get("version", "")))
    searched: set[str] = set()
    for filename, resource in _ordered(resources):
        rtype = resource["resourceType"]
        if rtype not in resource_types():
            loaded.refused.append(f"{filename}: {rtype} is not an R4 resource type")
            continue
        logical_id = resource.get("id")
        try:
            with transaction.atomic():
                if isinstance(logical_id, str) and repository.valid_id(logical_id):
                    repository.update(rtype, logical_id, resource)
                else:
                    repository.create(rtype, resource)
        except FhirError as error:
            loaded.refused.append(f"{filename}: {error.diagnostics}")
            continue
        loaded.written[rtype] = loaded.written.get(rtype, 0) + 1
        if rtype == "SearchParameter":
            searched.update(b for b in resource.get("base", ()) if b in resource_types())
        if on_resource is not None:
            on_resource(rtype, filename)
    if reindex_after and searched:
        loaded.reindexed = reindex(sorted(searched)).done
    return loaded
