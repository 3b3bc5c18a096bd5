"""Paging: _count, next/previous/self links, every match exactly once while writes happen; _total.

https://hl7.org/fhir/R4/http.html#paging and https://hl7.org/fhir/R4/search.html#count
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import override_settings

from fhir_api.store import repository
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def link(bundle: dict, relation: str) -> str | None:
    return next((lk["url"] for lk in bundle["link"] if lk["relation"] == relation), None)


def follow(search, url: str) -> dict:
    parts = urlsplit(url)
    return search.bundle(parts.path.removeprefix("/fhir"), parse_qsl(parts.query))


def match_ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", ()) if e["search"]["mode"] == "match"]


def patients(n: int, family: str = "Page") -> list[str]:
    return [store({"resourceType": "Patient", "name": [{"family": f"{family}{i:03d}"}]}) for i in range(n)]


def walk(search, first: dict, between=None) -> list[str]:
    seen, bundle, pages = [], first, 0
    while True:
        seen.extend(match_ids(bundle))
        url = link(bundle, "next")
        if url is None:
            return seen
        pages += 1
        if between is not None:
            between(pages)
        bundle = follow(search, url)


def test_count_limits_the_page_and_next_links_walk_everything(search):
    ids = patients(23)
    first = search.bundle("/Patient", {"_count": "5"})
    assert len(match_ids(first)) == 5
    assert link(first, "previous") is None
    assert walk(search, first) == ids


@pytest.mark.parametrize("sort", ["", "family", "-family", "-birthdate,family", "_id"])
def test_every_match_exactly_once_while_resources_are_created_updated_and_deleted(search, sort):
    """Creations after page one never show; deletions vanish; updates that keep the sort value stay put."""
    ids = patients(30)
    params = {"_count": "7", "family": "page"}
    if sort:
        params["_sort"] = sort
    first = search.bundle("/Patient", params)
    doomed = next(i for i in ids[1:-1] if i not in match_ids(first))  # not seen yet when deleted

    def write_between(page: int) -> None:
        # new matches that sort first, last and in between
        for prefix in ("Page000", "Page999", "Page0155"):
            store({"resourceType": "Patient", "name": [{"family": f"{prefix}-{page}"}]})
        # an update of a resource already seen and of one not seen yet (same sort value)
        for pid in (ids[0], ids[-1]):
            current = repository.read("Patient", pid).content
            repository.update("Patient", pid, {**current, "active": page % 2 == 0})
        if page == 1:
            repository.delete("Patient", doomed)

    seen = walk(search, first, write_between)
    assert len(seen) == len(set(seen)), "a resource was returned twice"
    assert set(seen) == set(ids) - {doomed}


def test_sorting_by_last_updated_pages_exactly_once_while_resources_are_created(search):
    """An update moves a resource in _lastUpdated order (a keyset cannot hide that); creations never show."""
    ids = patients(12)

    def create_between(page: int) -> None:
        patients(2, family=f"Late{page}")

    in_one_page = search.ids("/Patient", {"_count": "100", "_sort": "-_lastUpdated"})
    assert sorted(in_one_page) == sorted(ids)
    seen = walk(search, search.bundle("/Patient", {"_count": "5", "_sort": "-_lastUpdated"}), create_between)
    assert seen == in_one_page


def test_previous_links_walk_back(search):
    ids = patients(12)
    first = search.bundle("/Patient", {"_count": "5", "_sort": "-family"})
    second = follow(search, link(first, "next"))
    third = follow(search, link(second, "next"))
    assert link(third, "next") is None
    back = follow(search, link(third, "previous"))
    assert match_ids(back) == match_ids(second)
    back_again = follow(search, link(back, "previous"))
    assert match_ids(back_again) == match_ids(first) == list(reversed(ids))[:5]
    assert link(back_again, "previous") is None


def test_self_link_repeats_the_page(search):
    patients(6)
    first = search.bundle("/Patient", {"_count": "4"})
    second = follow(search, link(first, "next"))
    assert match_ids(follow(search, link(second, "self"))) == match_ids(second)
    assert "_count=4" in link(first, "self")


def test_count_is_capped_by_the_server_maximum(search):
    patients(4)
    with override_settings(FHIR_MAX_COUNT=3):
        bundle = search.bundle("/Patient", {"_count": "100"})
    assert len(match_ids(bundle)) == 3
    assert "_count=3" in link(bundle, "self")


def test_default_count(search):
    patients(4)
    with override_settings(FHIR_DEFAULT_COUNT=2):
        assert len(match_ids(search.bundle("/Patient"))) == 2


def test_total_modes(search):
    patients(7)
    assert "total" not in search.bundle("/Patient", {"_count": "3"})
    assert search.bundle("/Patient", {"_count": "3", "_total": "accurate"})["total"] == 7
    assert search.bundle("/Patient", {"_count": "3", "_total": "estimate"})["total"] >= 0
    assert "total" not in search.bundle("/Patient", {"_count": "3", "_total": "none"})
    # when everything fits on the first page the total costs nothing and is given
    assert search.bundle("/Patient", {"_count": "30"})["total"] == 7


def test_summary_count_and_count_zero_return_only_the_total(search):
    patients(3)
    bundle = search.bundle("/Patient", {"_summary": "count"})
    assert bundle["total"] == 3 and "entry" not in bundle
    assert search.bundle("/Patient", {"_count": "0"})["total"] == 3


def test_summary_and_elements_subset_entries(search):
    store(
        {
            "resourceType": "Patient",
            "name": [{"family": "Full"}],
            "gender": "male",
            "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        }
    )
    entry = search.bundle("/Patient", {"_elements": "gender"})["entry"][0]["resource"]
    assert entry["gender"] == "male" and "name" not in entry
    assert any(t["code"] == "SUBSETTED" for t in entry["meta"]["tag"])
    summary = search.bundle("/Patient", {"_summary": "true"})["entry"][0]["resource"]
    assert "text" not in summary and summary["name"][0]["family"] == "Full"


def test_entries_are_the_stored_resources(search):
    pid = store({"resourceType": "Patient", "name": [{"family": "Stored"}]})
    entry = search.bundle("/Patient")["entry"][0]
    assert entry["resource"] == repository.read("Patient", pid).content
    assert entry["fullUrl"] == f"http://testserver/fhir/Patient/{pid}"


def test_invalid_cursor_and_count(search):
    search.bundle("/Patient", {"_cursor": "garbage"}, status=400)
    search.bundle("/Patient", {"_count": "-1"}, status=400)


@pytest.mark.django_db(transaction=True)
def test_exactly_once_with_a_writer_thread_inserting_concurrently(search):
    """A real concurrent writer (PostgreSQL: committed transactions from another connection)."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs a database that serves concurrent connections")
    ids = patients(40)
    stop = threading.Event()

    def writer() -> None:
        try:
            n = 0
            while not stop.is_set() and n < 200:
                store({"resourceType": "Patient", "name": [{"family": f"Page{n % 50:03d}x"}]})
                n += 1
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = walk(search, search.bundle("/Patient", {"_count": "6", "_sort": "family", "family": "page"}))
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen))
    assert set(seen) >= set(ids)
