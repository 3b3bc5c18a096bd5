"""Console links for FHIR references: `Type/id` to the resource page, `Type/id/_history/n` to
that version's page (anything else, e.g. an absolute URL, is not linked)."""
from __future__ import annotations

import re

from django.urls import reverse

_LOCAL = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/(\d{1,9}))?\Z")


def resource_url(reference: str) -> str:
    found = _LOCAL.match(reference or "")
    if found is None:
        return ""
    kind, ident, version = found.groups()
    if version:
        return reverse("admin:fhir_version", kwargs={"resource_type": kind, "logical_id": ident,
                                                     "version_id": int(version)})
    return reverse("admin:fhir_resource", kwargs={"resource_type": kind, "logical_id": ident})
