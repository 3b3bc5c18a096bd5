"""Search prefixes eq ne gt lt ge le sa eb ap as range comparisons (https://hl7.org/fhir/R4/search.html#prefix).

Each prefix is a small registered class that turns a query value into a condition on the
`low`/`high` columns of an index row:

- dates: the target is the half-open range [low, high) its precision covers (None: open),
  the query value a range [qlo, qhi) too, compared as the spec's prefix table says;
- numbers and quantities: the target is a point (low = high) or a Range [low, high]; the
  query value's implicit precision ([99.5, 100.5) for "100") applies to eq, ne and ap, and
  the other prefixes compare with the value as written (search.html#number).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db.models import Q

from fhir_api.store.datetimes import shift

PREFIXES: dict[str, Prefix] = {}


def register(cls: type[Prefix]) -> type[Prefix]:
    PREFIXES[cls.code] = cls()
    return cls


def split(raw: str) -> tuple[Prefix, str]:
    """The prefix of a date/number/quantity value ("ge2020" -> ge, "2020"); eq by default."""
    head = raw[:2]
    if head in PREFIXES and len(raw) > 2 and not raw[2].isalpha():
        return PREFIXES[head], raw[2:]
    return PREFIXES["eq"], raw


def _q(field: str, op: str, value: Any) -> Q:
    return Q(**{f"{field}__{op}": value})


def _open(field: str) -> Q:
    return Q(**{f"{field}__isnull": True})


class Prefix:
    code: ClassVar[str]

    def dates(self, low: str, high: str, qlo: Any, qhi: Any) -> Q:
        """Target range [low, high) (None: unbounded) against the query range [qlo, qhi)."""
        raise NotImplementedError

    def point(self, field: str, qlo: Any, qhi: Any) -> Q:
        """A target that is one instant (e.g. Resource.last_updated) against [qlo, qhi)."""
        raise NotImplementedError

    def numbers(self, low: str, high: str, value: float, qlo: float, qhi: float) -> Q:
        """Target range [low, high] (a point when equal; None: open) against a number."""
        raise NotImplementedError


@register
class Eq(Prefix):
    code = "eq"

    def dates(self, low, high, qlo, qhi):
        return _q(low, "gte", qlo) & _q(high, "lte", qhi)

    def point(self, field, qlo, qhi):
        return _q(field, "gte", qlo) & _q(field, "lt", qhi)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(low, "gte", qlo) & _q(high, "lt", qhi)


@register
class Ne(Prefix):
    code = "ne"

    def dates(self, low, high, qlo, qhi):
        return _q(low, "lt", qlo) | _open(low) | _q(high, "gt", qhi) | _open(high)

    def point(self, field, qlo, qhi):
        return _q(field, "lt", qlo) | _q(field, "gte", qhi)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(low, "lt", qlo) | _open(low) | _q(high, "gte", qhi) | _open(high)


@register
class Gt(Prefix):
    code = "gt"

    def dates(self, low, high, qlo, qhi):  # the range above the query value overlaps the target
        return _q(high, "gt", qhi) | _open(high)

    def point(self, field, qlo, qhi):
        return _q(field, "gte", qhi)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(high, "gt", value) | _open(high)


@register
class Lt(Prefix):
    code = "lt"

    def dates(self, low, high, qlo, qhi):  # the range below the query value overlaps the target
        return _q(low, "lt", qlo) | _open(low)

    def point(self, field, qlo, qhi):
        return _q(field, "lt", qlo)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(low, "lt", value) | _open(low)


@register
class Ge(Prefix):
    code = "ge"

    def dates(self, low, high, qlo, qhi):  # gt, or the query range contains the target
        return PREFIXES["gt"].dates(low, high, qlo, qhi) | PREFIXES["eq"].dates(low, high, qlo, qhi)

    def point(self, field, qlo, qhi):
        return _q(field, "gte", qlo)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(high, "gte", value) | _open(high)


@register
class Le(Prefix):
    code = "le"

    def dates(self, low, high, qlo, qhi):  # lt, or the query range contains the target
        return PREFIXES["lt"].dates(low, high, qlo, qhi) | PREFIXES["eq"].dates(low, high, qlo, qhi)

    def point(self, field, qlo, qhi):
        return _q(field, "lt", qhi)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(low, "lte", value) | _open(low)


@register
class Sa(Prefix):
    code = "sa"

    def dates(self, low, high, qlo, qhi):  # the target starts after the query range ends
        return _q(low, "gte", qhi)

    def point(self, field, qlo, qhi):
        return _q(field, "gte", qhi)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(low, "gt", value)


@register
class Eb(Prefix):
    code = "eb"

    def dates(self, low, high, qlo, qhi):  # the target ends before the query range starts
        return _q(high, "lte", qlo)

    def point(self, field, qlo, qhi):
        return _q(field, "lt", qlo)

    def numbers(self, low, high, value, qlo, qhi):
        return _q(high, "lt", value)


@register
class Ap(Prefix):
    """Approximately: overlap with the query value widened by 10 % (search.html#prefix).

    For dates the 10 % is of the distance between now and the value, at least a day.
    """

    code = "ap"

    @staticmethod
    def widen(qlo: Any, qhi: Any) -> tuple[Any, Any]:
        if isinstance(qlo, datetime):
            now = datetime.now(qlo.tzinfo)
            gap = max(abs(now - qlo) / 10, timedelta(days=1))
            return shift(qlo, -gap), shift(qhi, gap)  # clamped at the calendar's ends
        else:  # epoch seconds (composite date components)
            gap = max(abs(datetime.now().timestamp() - qlo) / 10, 86400.0)
        return qlo - gap, qhi + gap

    def dates(self, low, high, qlo, qhi):
        elo, ehi = self.widen(qlo, qhi)
        return (_q(low, "lt", ehi) | _open(low)) & (_q(high, "gt", elo) | _open(high))

    def point(self, field, qlo, qhi):
        elo, ehi = self.widen(qlo, qhi)
        return _q(field, "gte", elo) & _q(field, "lt", ehi)

    def numbers(self, low, high, value, qlo, qhi):
        gap = max(abs(value) / 10, (qhi - qlo) / 2)
        return (_q(low, "lte", value + gap) | _open(low)) & (_q(high, "gte", value - gap) | _open(high))
