"""Helpers for search tests: store resources through the repository, search over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_api.store import repository


def store(resource: dict[str, Any], logical_id: str | None = None) -> str:
    """Create (or, with an id, update-as-create) a resource; returns its id."""
    if logical_id is not None:
        return repository.update(
            resource["resourceType"], logical_id, {**resource, "id": logical_id}
        ).stored.logical_id
    return repository.create(resource["resourceType"], resource).stored.logical_id


class Searcher:
    def __init__(self, fhir: Any) -> None:
        self.fhir = fhir

    def bundle(
        self,
        path: str,
        params: list[tuple[str, str]] | dict[str, str] | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        from urllib.parse import urlencode

        items = list(params.items()) if isinstance(params, dict) else list(params or [])
        query = ("?" + urlencode(items)) if items else ""
        response = self.fhir.client.get("/fhir" + path + query, **self.fhir._headers(headers or {}))
        assert response.status_code == status, response.content
        return response.json()

    def ids(
        self, path: str, params: list[tuple[str, str]] | dict[str, str] | None = None, **kw: Any
    ) -> list[str]:
        """Logical ids of the matches, in order."""
        bundle = self.bundle(path, params, **kw)
        return [e["resource"]["id"] for e in bundle.get("entry", ()) if e["search"]["mode"] == "match"]

    def idset(
        self, path: str, params: list[tuple[str, str]] | dict[str, str] | None = None, **kw: Any
    ) -> set[str]:
        return set(self.ids(path, params, **kw))


@pytest.fixture
def search(fhir) -> Searcher:
    return Searcher(fhir)
