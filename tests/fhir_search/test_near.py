"""`near` on Location: positional search over Location.position.

https://hl7.org/fhir/R4/location.html#positional -- `near=latitude|longitude|distance|units`,
km when the units are omitted, a server-chosen distance (1 km here) when the distance is.
Distances are great-circle distances on the mean-radius sphere (fhir_search.params.near).
"""

from __future__ import annotations

import math

import pytest

from fhir_search.capability import search_param_entries
from fhir_search.params.near import EARTH_RADIUS_KM
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db
STRICT = {"Prefer": "handling=strict"}

AMSTERDAM = (52.3676, 4.9041)
UTRECHT = (52.0907, 5.1214)  # ~34 km from Amsterdam
ROTTERDAM = (51.9244, 4.4777)  # ~57 km from Amsterdam


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine, written out here independently of the server's arithmetic."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def place(name: str, point: tuple[float, float] | None) -> str:
    resource = {"resourceType": "Location", "name": name}
    if point is not None:
        resource["position"] = {"latitude": point[0], "longitude": point[1]}
    return store(resource)


def near(point: tuple[float, float], *rest: object) -> str:
    return "|".join(str(v) for v in (*point, *rest))


@pytest.fixture
def dutch():
    return {name: place(name, point) for name, point in
            (("amsterdam", AMSTERDAM), ("utrecht", UTRECHT), ("rotterdam", ROTTERDAM), ("nowhere", None))}


def test_locations_within_the_distance_match(search, dutch):
    found = search.idset("/Location", {"near": near(AMSTERDAM, 40, "km")}, headers=STRICT)
    assert found == {dutch["amsterdam"], dutch["utrecht"]}
    found = search.idset("/Location", {"near": near(AMSTERDAM, 60)}, headers=STRICT)  # km by default
    assert found == {dutch["amsterdam"], dutch["utrecht"], dutch["rotterdam"]}


def test_the_limit_is_the_exact_great_circle_distance(search, dutch):
    exact = great_circle_km(AMSTERDAM, UTRECHT)
    inside = search.idset("/Location", {"near": near(AMSTERDAM, exact * 1.000001)})
    outside = search.idset("/Location", {"near": near(AMSTERDAM, exact * 0.999999)})
    assert dutch["utrecht"] in inside
    assert outside == {dutch["amsterdam"]}


def test_a_point_in_the_corner_of_the_bounding_box_is_not_near(search):
    centre = (60.0, 10.0)
    # 100 km due north and 100 km due east (along the parallel) are both within 100 km;
    # the corner combining both offsets is ~141 km away: inside the box, outside the circle.
    dlat = math.degrees(99.0 / EARTH_RADIUS_KM)
    dlon = math.degrees(99.0 / EARTH_RADIUS_KM / math.cos(math.radians(60.0)))
    north, east = place("north", (60.0 + dlat, 10.0)), place("east", (60.0, 10.0 + dlon))
    corner = place("corner", (60.0 + dlat, 10.0 + dlon))
    found = search.idset("/Location", {"near": near(centre, 100, "km")})
    assert found == {north, east}
    assert corner not in found


def test_units_metres_and_miles(search, dutch):
    exact_km = great_circle_km(AMSTERDAM, UTRECHT)
    for value, unit in ((exact_km * 1000 + 50, "m"), (exact_km / 1.609344 + 0.1, "[mi_i]"),
                        (exact_km / 1.609344 + 0.1, "mi")):
        assert dutch["utrecht"] in search.idset("/Location", {"near": near(AMSTERDAM, value, unit)}), unit
    for value, unit in ((exact_km * 1000 - 50, "m"), (exact_km / 1.609344 - 0.1, "[mi_i]")):
        assert dutch["utrecht"] not in search.idset("/Location", {"near": near(AMSTERDAM, value, unit)}), unit


def test_without_a_distance_near_means_within_one_kilometre(search):
    centre = (48.8584, 2.2945)
    close = place("500 m north", (centre[0] + math.degrees(0.5 / EARTH_RADIUS_KM), centre[1]))
    far = place("2 km north", (centre[0] + math.degrees(2.0 / EARTH_RADIUS_KM), centre[1]))
    assert search.idset("/Location", {"near": near(centre)}, headers=STRICT) == {close}
    assert far not in search.idset("/Location", {"near": near(centre)})


def test_the_circle_wraps_across_the_antimeridian(search):
    east_side = place("Fiji east", (-17.8, 179.95))
    west_side = place("Fiji west", (-17.8, -179.95))
    place("far west", (-17.8, -178.0))
    assert search.idset("/Location", {"near": near((-17.8, 179.99), 20)}) == {east_side, west_side}
    assert search.idset("/Location", {"near": near((-17.8, -179.99), 20)}) == {east_side, west_side}


def test_a_circle_around_the_pole_takes_every_longitude(search):
    this_side = place("this side", (89.95, 0.0))
    other_side = place("other side", (89.95, 180.0))  # ~11 km away, across the pole
    place("too far", (89.0, 90.0))
    assert search.idset("/Location", {"near": near((89.95, 0.0), 15)}) == {this_side, other_side}


def test_values_are_ored_and_clauses_anded(search, dutch):
    either = search.idset("/Location", {"near": f"{near(AMSTERDAM, 1)},{near(ROTTERDAM, 1)}"})
    assert either == {dutch["amsterdam"], dutch["rotterdam"]}
    both = search.idset("/Location", [("near", near(AMSTERDAM, 40)), ("near", near(UTRECHT, 40))])
    assert both == {dutch["amsterdam"], dutch["utrecht"]}


def test_missing_finds_locations_without_a_position(search, dutch):
    assert search.idset("/Location", {"near:missing": "true"}) == {dutch["nowhere"]}


def test_a_moved_location_is_found_at_its_new_position(search, dutch):
    from fhir_api.store import repository

    repository.update("Location", dutch["rotterdam"], {
        "resourceType": "Location", "id": dutch["rotterdam"], "name": "moved",
        "position": {"latitude": AMSTERDAM[0], "longitude": AMSTERDAM[1] + 0.001},
    })
    assert dutch["rotterdam"] in search.idset("/Location", {"near": near(AMSTERDAM, 1)})
    assert dutch["rotterdam"] not in search.idset("/Location", {"near": near(ROTTERDAM, 1)})


@pytest.mark.parametrize("value", [
    "52.3", "abc|4.9", "52.3|east", "91|0", "0|181", "52.3|4.9|-1", "52.3|4.9|ten",
    "52.3|4.9|10|furlong", "52.3|4.9||km", "52.3|4.9|10|km|extra", "nan|4.9",
])
def test_a_malformed_value_is_a_bad_request(search, value):
    outcome = search.bundle("/Location", {"near": value}, status=400, headers=STRICT)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "near" in outcome["issue"][0]["diagnostics"]


def test_near_is_in_the_capability_statement():
    entries = {e["name"]: e for e in search_param_entries("Location")}
    assert entries["near"]["type"] == "special"
    assert entries["near"]["definition"] == "http://hl7.org/fhir/SearchParameter/Location-near"
