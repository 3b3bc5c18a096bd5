"""history at instance, type and system level (https://hl7.org/fhir/R4/http.html#history)."""
from __future__ import annotations

import time

import pytest

from tests.conftest import new_patient

pytestmark = pytest.mark.django_db


def _ids(bundle):
    return [(e["fullUrl"].rsplit("/", 2)[-2:], e["response"]["etag"]) for e in bundle.get("entry", [])]


def test_instance_history_newest_first_with_total(fhir, patient):
    fhir.put(f"/Patient/{patient['id']}", dict(patient, gender="female"))
    bundle = fhir.get(f"/Patient/{patient['id']}/_history").json()
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["2", "1"]
    assert bundle["entry"][0]["request"] == {"method": "PUT", "url": f"Patient/{patient['id']}"}
    assert bundle["entry"][1]["response"]["status"] == "201 Created"


def test_instance_history_of_unknown_resource_is_404(fhir):
    assert fhir.get("/Patient/nope/_history").status_code == 404


def test_type_history_only_that_type(fhir, patient):
    fhir.post("/Practitioner", {"resourceType": "Practitioner"})
    bundle = fhir.get("/Patient/_history").json()
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Patient"}


def test_system_history_pages_through_everything_once(fhir):
    for i in range(7):
        fhir.post("/Patient", new_patient(gender="male" if i % 2 else "female"))
    seen, url = [], "/_history?_count=3"
    first = True
    while url:
        bundle = fhir.get(url).json()
        if first:
            # a write while paging must not shift the pages
            fhir.post("/Patient", new_patient())
            first = False
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].split("/fhir", 1)[1] if nxt else None
    assert len(seen) == 7 and len(set(seen)) == 7


def test_history_since_filters_older_versions(fhir, patient):
    time.sleep(0.01)
    bundle = fhir.get(f"/Patient/{patient['id']}/_history").json()
    last = bundle["entry"][0]["response"]["lastModified"]
    fhir.put(f"/Patient/{patient['id']}", dict(patient, gender="female"))
    since = fhir.get(f"/Patient/{patient['id']}/_history", _since="2999-01-01").json()
    assert since.get("entry", []) == []
    recent = fhir.get("/Patient/_history", _since=last).json()
    assert len(recent["entry"]) == 2  # version 1 (at exactly _since) and version 2


def test_history_at_returns_versions_current_then(fhir, patient):
    v1_time = fhir.get(f"/Patient/{patient['id']}/_history/1").json()["meta"]["lastUpdated"]
    time.sleep(0.01)
    fhir.put(f"/Patient/{patient['id']}", dict(patient, gender="female"))
    bundle = fhir.get(f"/Patient/{patient['id']}/_history", _at=v1_time).json()
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["1"]


def test_history_bad_since_is_400(fhir):
    assert fhir.get("/_history", _since="yesterday").status_code == 400


@pytest.mark.parametrize("path", ["/Patient/{id}/_history", "/Patient/_history", "/_history"])
def test_count_zero_is_a_page_without_entries(fhir, patient, path):
    # Found by schemathesis: _count=0 once failed with a 500 (IndexError).
    response = fhir.get(path.format(id=patient["id"]), _count="0")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "history" and not bundle.get("entry")
    assert not any(link["relation"] == "next" for link in bundle.get("link", []))
