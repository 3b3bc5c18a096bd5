"""Date search: values and query values are ranges; every prefix; Periods and partial dates.

https://hl7.org/fhir/R4/search.html#date and #prefix
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from fhir_api.store.repository import format_instant, now
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def encounter(start: str | None = None, end: str | None = None) -> str:
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    return store(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": period,
        }
    )


def born(date: str) -> str:
    return store({"resourceType": "Patient", "birthDate": date})


def test_a_partial_date_matches_everything_inside_it(search):
    march = born("2020-03-15")
    born("2020-04-01")
    assert search.ids("/Patient", {"birthdate": "2020-03"}) == [march]
    assert set(search.ids("/Patient", {"birthdate": "2020"})) == {
        march,
        *search.ids("/Patient", {"birthdate": "2020-04"}),
    }


def test_a_partial_stored_date_is_not_equal_to_a_more_precise_query(search):
    born("2020-03")  # all of March: not within the single day asked for
    assert search.ids("/Patient", {"birthdate": "2020-03-15"}) == []
    assert len(search.ids("/Patient", {"birthdate": "ap2020-03-15"})) == 1


def test_period_inside_the_query_range_is_equal(search):
    inside = encounter("2021-05-01T10:00:00Z", "2021-05-01T11:00:00Z")
    across = encounter("2021-04-30T22:00:00Z", "2021-05-01T02:00:00Z")
    assert search.ids("/Encounter", {"date": "2021-05-01"}) == [inside]
    assert across not in search.ids("/Encounter", {"date": "eq2021-05-01"})
    assert across in search.ids("/Encounter", {"date": "ne2021-05-01"})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # open ranges reach both above and below the day
        ("gt2021-05-01", {"after", "overlapping_end", "open_end", "open_start"}),
        ("lt2021-05-01", {"before", "overlapping_start", "open_end", "open_start"}),
        ("ge2021-05-01", {"after", "overlapping_end", "open_end", "open_start", "inside"}),
        ("le2021-05-01", {"before", "overlapping_start", "open_end", "open_start", "inside"}),
        ("sa2021-05-01", {"after"}),
        ("eb2021-05-01", {"before"}),
        ("eq2021-05-01", {"inside"}),
        (
            "ne2021-05-01",
            {"after", "before", "open_end", "open_start", "overlapping_end", "overlapping_start"},
        ),
    ],
)
def test_prefixes_compare_ranges(search, query, expected):
    ids = {
        "before": encounter("2021-04-01", "2021-04-30"),
        "after": encounter("2021-05-03", "2021-05-04"),
        "inside": encounter("2021-05-01T08:00:00Z", "2021-05-01T09:00:00Z"),
        "overlapping_start": encounter("2021-04-30", "2021-05-01T12:00:00Z"),
        "overlapping_end": encounter("2021-05-01T12:00:00Z", "2021-05-02"),
        "open_end": encounter("2021-04-01"),
        "open_start": encounter(None, "2021-06-01"),
    }
    names = {v: k for k, v in ids.items()}
    assert {names[i] for i in search.ids("/Encounter", {"date": query, "_count": "50"})} == expected


def test_date_range_with_two_prefixes(search):
    born("1990-06-01")
    mid = born("2000-06-01")
    born("2010-06-01")
    assert search.ids("/Patient", [("birthdate", "ge1995"), ("birthdate", "lt2005")]) == [mid]


def test_times_with_offsets_compare_in_utc(search):
    obs = store(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "2021-05-01T23:30:00+02:00",
        }
    )
    assert search.ids("/Observation", {"date": "2021-05-01T21:30:00Z"}) == [obs]
    assert search.ids("/Observation", {"date": "2021-05-01T23:30:00+02:00"}) == [obs]
    # an unencoded "+" arrives as a space; it is read back as "+"
    assert search.ids("/Observation", {"date": "2021-05-01T23:30:00 02:00"}) == [obs]


def test_approximately_widens_the_range(search):
    target = born("2000-01-10")
    born("1960-01-01")
    assert search.ids("/Patient", {"birthdate": "ap2000-01-01"}) == [target]


def test_last_updated_is_the_resource_row_time(search):
    pid = born("2000-01-01")
    stamp = now()
    assert search.ids("/Patient", {"_lastUpdated": f"ge{format_instant(stamp - timedelta(minutes=1))}"}) == [
        pid
    ]
    assert search.ids("/Patient", {"_lastUpdated": f"gt{format_instant(stamp + timedelta(minutes=1))}"}) == []
    assert search.ids("/Patient", {"_lastUpdated": f"lt{format_instant(stamp + timedelta(minutes=1))}"}) == [
        pid
    ]


def test_malformed_dates_are_a_bad_request(search):
    bundle = search.bundle("/Patient", {"birthdate": "2020-13-45"}, status=400)
    assert bundle["resourceType"] == "OperationOutcome"
    search.bundle("/Patient", {"birthdate": "yesterday"}, status=400)


def test_condition_onset_choice_types(search):
    as_date = store(
        {"resourceType": "Condition", "subject": {"reference": "Patient/x"}, "onsetDateTime": "2019-02-03"}
    )
    as_period = store(
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/x"},
            "onsetPeriod": {"start": "2019-02-01", "end": "2019-02-05"},
        }
    )
    store({"resourceType": "Condition", "subject": {"reference": "Patient/x"}, "onsetString": "as a child"})
    assert search.ids("/Condition", {"onset-date": "2019-02-03"}) == [as_date]
    assert set(search.ids("/Condition", {"onset-date": "2019-02"})) == {as_date, as_period}
