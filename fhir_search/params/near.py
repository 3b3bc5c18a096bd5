"""`near` on Location: positional search (https://hl7.org/fhir/R4/location.html#positional).

`Location?near=latitude|longitude|distance|units` finds the Locations whose `position` is
within `distance` of the point (WGS84 degrees). Units are km when omitted (the
definition's words); km, m, mi / [mi_i] (international mile) and [nmi_i] (nautical mile)
are understood. Without a distance "near" means within DEFAULT_DISTANCE_KM, as the
definition leaves it to the server. A malformed value is a ValueError (400).

Distances are great-circle distances on a sphere of the Earth's mean radius (WGS84
ellipsoid flattening makes that up to ~0.5 % off, which the definition allows: "servers
may search using various techniques that might have differing accuracies").

One SQL condition over fhir_search_positionindex, the same on SQLite and PostgreSQL:

1. a bounding box on (latitude, longitude), which the (code, resource_type, latitude,
   longitude) index answers. It encloses the whole spherical cap exactly: latitude
   +-d/R; longitude +-asin(sin(d/R) / cos(lat)), split in two where it crosses the
   antimeridian, and unbounded when the cap holds a pole;
2. the exact great-circle test, as arithmetic on the unit vectors stored per row: two
   points are within angle t of each other iff the squared chord between them,
   (x-qx)^2 + (y-qy)^2 + (z-qz)^2, is at most 4 sin^2(t/2). The trigonometry happens in
   Python (at index time for the rows, at parse time for the query), so SQLite needs no
   math functions and both databases give the same answer as a haversine would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, Value
from django.db.models.fields import FloatField
from django.db.models.lookups import LessThanOrEqual

from fhir_search import converters
from fhir_search.extraction import Context, Typed
from fhir_search.models import PositionIndex
from fhir_search.params.base import Env, ParamType, unescape
from fhir_search.registry import SearchParam

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
DEFAULT_DISTANCE_KM = 1.0
UNITS_KM = {"km": 1.0, "m": 0.001, "mi": 1.609344, "[mi_i]": 1.609344, "[nmi_i]": 1.852}
_MARGIN = 1e-9  # degrees added to the box so rounding never cuts off a point the exact test keeps


def unit_vector(latitude: float, longitude: float) -> tuple[float, float, float]:
    lat, lon = math.radians(latitude), math.radians(longitude)
    return math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)


@dataclass(frozen=True, slots=True)
class NearQuery:
    latitude: float
    longitude: float
    distance_km: float

    def condition(self) -> Q:
        angle = self.distance_km / EARTH_RADIUS_KM  # radians of arc
        if angle >= math.pi:
            return Q()  # the whole globe
        return self._box(angle) & self._within(angle)

    def _box(self, angle: float) -> Q:
        spread = math.degrees(angle) + _MARGIN
        low, high = self.latitude - spread, self.latitude + spread
        box = Q(latitude__gte=max(low, -90.0), latitude__lte=min(high, 90.0))
        if low <= -90.0 or high >= 90.0:
            return box  # the cap holds a pole: every longitude
        ratio = math.sin(angle) / math.cos(math.radians(self.latitude))
        if ratio >= 1.0:
            return box
        half = math.degrees(math.asin(ratio)) + _MARGIN
        west, east = self.longitude - half, self.longitude + half
        if west < -180.0:
            return box & (Q(longitude__gte=west + 360.0) | Q(longitude__lte=east))
        if east > 180.0:
            return box & (Q(longitude__gte=west) | Q(longitude__lte=east - 360.0))
        return box & Q(longitude__gte=west, longitude__lte=east)

    def _within(self, angle: float) -> Q:
        qx, qy, qz = unit_vector(self.latitude, self.longitude)
        squares = [(F(axis) - Value(q)) * (F(axis) - Value(q)) for axis, q in (("x", qx), ("y", qy), ("z", qz))]
        chord2 = squares[0] + squares[1] + squares[2]
        limit = (2.0 * math.sin(angle / 2.0)) ** 2
        return Q(LessThanOrEqual(chord2, Value(limit, output_field=FloatField())))


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def parse_near(raw: str) -> NearQuery:
    parts = [p.strip() for p in unescape(raw).split("|")]
    if len(parts) < 2 or len(parts) > 4:
        raise ValueError(f"{raw!r} is not latitude|longitude[|distance[|units]]")
    latitude, longitude = _number(parts[0], "latitude"), _number(parts[1], "longitude")
    if not -90.0 <= latitude <= 90.0:
        raise ValueError(f"latitude {parts[0]} is not between -90 and 90")
    if not -180.0 <= longitude <= 180.0:
        raise ValueError(f"longitude {parts[1]} is not between -180 and 180")
    distance_km = DEFAULT_DISTANCE_KM
    if len(parts) > 2 and parts[2]:
        distance = _number(parts[2], "distance")
        if distance < 0:
            raise ValueError(f"distance {parts[2]} is negative")
        unit = parts[3] if len(parts) > 3 and parts[3] else "km"
        if unit not in UNITS_KM:
            raise ValueError(f"unknown distance unit {unit!r} (use one of {', '.join(UNITS_KM)})")
        distance_km = distance * UNITS_KM[unit]
    elif len(parts) > 3 and parts[3]:
        raise ValueError(f"{raw!r} gives units but no distance")
    return NearQuery(latitude, longitude, distance_km)


class NearParam(ParamType):
    """The `special` parameter Location-near: rows of PositionIndex."""

    name = "near"
    model = PositionIndex

    def rows(self, param: SearchParam, typed: Typed, context: Context) -> list[dict[str, Any]]:
        value = typed.value
        if not isinstance(value, dict):
            return []
        latitude, longitude = converters.as_number(value.get("latitude")), converters.as_number(value.get("longitude"))
        if latitude is None or longitude is None:
            return []
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            return []  # not a WGS84 position: nothing to be near
        x, y, z = unit_vector(latitude, longitude)
        return [{"latitude": latitude, "longitude": longitude, "x": x, "y": y, "z": z}]

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> NearQuery:
        return parse_near(raw)

    def condition(self, param: SearchParam, parsed: NearQuery, modifier: str | None) -> Q:
        return parsed.condition()
