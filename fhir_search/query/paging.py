"""Sorting and keyset paging (https://hl7.org/fhir/R4/search.html#sort and http.html#paging).

`_sort=a,-b` orders by each parameter's value (the lowest value of a resource when
ascending, the highest when descending; resources without a value come last), then by the
resource row id, so the order is total. A page link carries an opaque cursor: the sort
key and row id of the row at the page's edge, plus a snapshot bound (the highest row id
when page one was read). The next page is "rows after this key, with id <= bound", so
a client walks every match of page one exactly once, whatever is inserted meanwhile
(resources created later are not in this result; an update that changes a sort value
moves its resource, as with any keyset). The bound is a row id, so on PostgreSQL a create
whose transaction took its id before page one but committed after it can still show up,
once, on a later page.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db.models import Expression, F, OuterRef, Q, Subquery
from django.db.models.expressions import OrderBy

from fhir_api.store.errors import BadRequest
from fhir_api.store.models import Resource
from fhir_search.query.build import NOTHING
from fhir_search.query.parse import SortKey


@dataclass(frozen=True)
class Cursor:
    bound: int  # highest Resource.id of the snapshot
    keys: tuple[Any, ...]  # sort values of the edge row
    last_id: int  # Resource.id of the edge row
    backwards: bool  # a "previous" link: rows before the edge

    def encode(self) -> str:
        keys = [{"t": k.isoformat()} if isinstance(k, datetime) else k for k in self.keys]
        raw = orjson.dumps({"b": self.bound, "k": keys, "i": self.last_id, "p": self.backwards})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, n_keys: int) -> Cursor:
        try:
            data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            keys = tuple(_key(k) for k in data["k"])
            cursor = cls(_row_id(data["b"]), keys, _row_id(data["i"]), bool(data["p"]))
        except (ValueError, KeyError, TypeError, OverflowError, orjson.JSONDecodeError):
            # A cursor is ours only until the client hands it back: a tampered one is a 400.
            raise BadRequest(f"Invalid paging cursor '{token[:100]}'") from None
        if len(cursor.keys) != n_keys:
            raise BadRequest("The paging cursor does not belong to this search (its _sort changed)")
        return cursor


def _row_id(value: Any) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(value)
    return value


def _key(value: Any) -> Any:
    """One sort value of a cursor, as encode() wrote it (a tampered one raises ValueError)."""
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str) and "\x00" not in value:
        return value
    raise ValueError(value)


def key_name(index: int) -> str:
    return f"sort_{index}"


def snapshot_bound() -> Subquery:
    """The snapshot bound of page one, read in the page's own statement (PostgreSQL runs it
    once, as an InitPlan)."""
    return Subquery(Resource.objects.order_by("-id").values("id")[:1])


def sort_expression(key: SortKey) -> Expression:
    """The value a resource sorts by: a column, or its lowest/highest index value."""
    ptype = key.ptype
    field = ptype.sort_field(key.descending)
    if ptype.on_resource:
        return F(field)
    order = F(field).desc(nulls_last=True) if key.descending else F(field).asc(nulls_last=True)
    values = ptype.model.objects.filter(resource_id=OuterRef("pk"), code=key.param.code).order_by(order)
    return Subquery(values.values(field)[:1])


def ordering(keys: list[SortKey], backwards: bool) -> list[OrderBy]:
    out = []
    for i, key in enumerate(keys):
        descending = key.descending != backwards
        # Resources without a value sort last going forwards, so first going backwards.
        nulls = {"nulls_first": True} if backwards else {"nulls_last": True}
        out.append(OrderBy(F(key_name(i)), descending=descending, **nulls))
    out.append(OrderBy(F("id"), descending=backwards))
    return out


def _beyond(name: str, descending: bool, value: Any, backwards: bool) -> Q:
    """Rows strictly after (or before, backwards) `value` in one key, nulls last."""
    if value is None:
        return Q(**{f"{name}__isnull": False}) if backwards else NOTHING
    later = "lt" if descending != backwards else "gt"
    q = Q(**{f"{name}__{later}": value})
    return q if backwards else q | Q(**{f"{name}__isnull": True})


def _equal(name: str, value: Any) -> Q:
    return Q(**{f"{name}__isnull": True}) if value is None else Q(**{name: value})


def seek(keys: list[SortKey], cursor: Cursor) -> Q:
    """Rows after the cursor's edge row (before it, for a backwards cursor), in sort order."""
    q = Q(id__lt=cursor.last_id) if cursor.backwards else Q(id__gt=cursor.last_id)
    for i in reversed(range(len(keys))):
        name, value = key_name(i), cursor.keys[i]
        q = _beyond(name, keys[i].descending, value, cursor.backwards) | (_equal(name, value) & q)
    return q
