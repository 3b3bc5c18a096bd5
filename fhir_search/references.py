"""Parsing of reference strings (https://hl7.org/fhir/R4/references.html#literal).

A literal reference is relative ("Patient/123", optionally "/_history/2"), absolute (the
same behind a server base URL), a contained reference ("#p1"), or any other URI
("urn:uuid:...", a canonical URL with an optional "|version").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

_LITERAL = re.compile(
    r"(?:(?P<base>[a-z][a-z0-9+.\-]*://.+?)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?\Z"
)


@dataclass(frozen=True, slots=True)
class Target:
    type: str | None = None  # local target: "Patient"
    id: str | None = None
    version: str | None = None
    url: str | None = None  # absolute or other URI, for references that are not local


def parse(reference: str, local_base: str | None = None) -> Target:
    """What a reference string points at. Absolute URLs are local only under `local_base`."""
    if local_base is None:
        local_base = settings.FHIR_BASE_URL
    m = _LITERAL.match(reference)
    if m is None:
        url, _, version = reference.partition("|")  # canonical "url|version"
        return Target(url=url, version=version or None)
    if m.group("base") is None or (local_base and m.group("base").rstrip("/") == local_base.rstrip("/")):
        return Target(m.group("type"), m.group("id"), m.group("version"))
    return Target(url=reference.split("/_history/", 1)[0], version=m.group("version"))


def target_type(reference: str, contained: dict[str, str] | None = None) -> str | None:
    """The resource type a reference string names, as `resolve() is X` needs it."""
    if reference.startswith("#"):
        return (contained or {}).get(reference[1:])
    m = _LITERAL.match(reference)
    return m.group("type") if m else None
