"""Patient consent as SQL: the rows of a patient's data the token's Consents let through.

https://hl7.org/fhir/R4/consent.html -- smart_auth.consent compiles each active
patient-privacy Consent into provision rows (ConsentNode) and their criteria
(ConsentCriterion). A resource is the data of a patient when it is that Patient or its
Patient-compartment parameters refer to the patient. It is denied when some deny provision
of one of its patients applies to this request and this resource (with every provision
above it: each row carries its whole path) and none of that provision's exceptions does:
the deepest applying provision decides, and a deny wins over a permit beside it. With
FHIR_CONSENT_DEFAULT=deny a patient's data also needs an applying permit that no exception
overrides. Break-the-glass (Access.break_glass) sets aside deny provisions that do not name
ETREAT, and the default of deny.

The test is one SQL expression (ConsentAllows) written by hand and kept per shape (type,
interaction kind, number of actors...): building the same test with the ORM cost tens of
milliseconds of Python per request. Its subqueries are correlated on indexed columns (a
resource's references by resource id, provisions by patient), so a patient without
Consent costs one index probe per resource. When no Consent exists at all and the default
is permit, no SQL is added.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Expression, F, Q
from django.utils import timezone

from fhir_api.store.models import Resource
from fhir_api.store.prepared import prepared_cursor
from fhir_search import compartments
from fhir_search.care_dates import care_date_param
from fhir_search.models import DateIndex, ReferenceIndex, TokenIndex
from smart_auth.access import CLIENT_ID_SYSTEM, SET_ASIDE, Access, ConsentCriterion, ConsentNode

C = ConsentCriterion
WRITES = frozenset("cud")
# The parameters whose values a provision's `code` and `securityLabel` are compared with.
CODE_PARAM, LABEL_PARAM = "code", "_security"
# Where the outer resource row's columns go in a cached statement (filled per query).
_ID, _LOGICAL_ID, _TYPE = "@@id@@", "@@logical_id@@", "@@type@@"
_SAFE = re.compile(r"[A-Za-z0-9_\-]+\Z")


@cache
def _patient_links() -> dict[str, tuple[str, ...]]:
    """Type -> its reference parameters that put it in a patient's compartment."""
    out = {}
    for resource_type in compartments.definitions().get("Patient", {}):
        if resource_type != "Patient":
            params = compartments.member_params("Patient", resource_type)
            if params:
                out[resource_type] = params
    return out


@cache
def _care_dates() -> dict[str, str]:
    return {t: p for t in _patient_links() if (p := care_date_param(t)) is not None}


def _literal(value: str) -> str:
    """A type or parameter code from the definitions, inlined in cached SQL."""
    if not _SAFE.match(value):
        raise ValueError(f"unexpected name {value!r}")
    return f"'{value}'"


def _in(values) -> str:
    return "(" + ", ".join(_literal(v) for v in values) + ")"


def _by_type(alias: str, pairs: dict[str, Any]) -> str:
    """Index rows (alias) of the (type, parameter) pairs given, grouping types that share them."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for resource_type, params in pairs.items():
        groups.setdefault((params,) if isinstance(params, str) else tuple(params), []).append(resource_type)
    return "(" + " OR ".join(f"({alias}.resource_type IN {_in(types)} AND {alias}.code IN {_in(params)})"
                             for params, types in sorted(groups.items())) + ")"


@dataclass(frozen=True)
class _Shape:
    """What the cached statement depends on (values travel as parameters)."""

    resource_type: str | None  # None: any type (the outer row says)
    reading: bool
    break_glass: bool
    default_deny: bool
    actors: int  # how many actor values the token has
    purpose: bool  # whether the token states a purpose


class _Sql:
    """A statement under construction: text with %s, and which request value each %s takes."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def param(self, key: str) -> str:
        self.keys.append(key)
        return "%s"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _applies(shape: _Shape, sql: _Sql, n: str) -> str:
    """The provision row `n`, with its whole path, applies to this request and resource."""
    criterion = _q(C._meta.db_table)
    dates, tokens = _q(DateIndex._meta.db_table), _q(TokenIndex._meta.db_table)
    if shape.resource_type is not None:
        code = _care_dates().get(shape.resource_type)
        date_code = f"d.code = {_literal(code)}" if code else "1 = 0"
    else:
        date_code = _by_type("d", _care_dates())
    governs = f"{n}.reads" if shape.reading else f"{n}.writes"
    # Parameters are taken in the order they appear in the text.
    text = (f"{n}.start <= {sql.param('now')} AND {n}.{_q('end')} > {sql.param('now')} AND {governs}"
            f" AND (NOT {n}.dated OR EXISTS (SELECT 1 FROM {dates} d WHERE d.resource_id = {_ID} AND {date_code}"
            f" AND d.low >= {n}.data_low AND d.high <= {n}.data_high))")
    met = [f"(v.kind = '{C.CLASS}' AND v.value = {_TYPE})",
           f"(v.kind = '{C.DATA}' AND v.system = {_TYPE} AND v.value = {_LOGICAL_ID})",
           f"(v.kind IN ('{C.CODE}', '{C.LABEL}') AND EXISTS (SELECT 1 FROM {tokens} t WHERE t.resource_id = {_ID}"
           f" AND t.code = CASE v.kind WHEN '{C.CODE}' THEN '{CODE_PARAM}' ELSE '{LABEL_PARAM}' END"
           " AND t.value = v.value AND (v.system = '' OR t.system = v.system)))"]
    if shape.actors:
        values = ", ".join(sql.param(f"actor{i}") for i in range(shape.actors))
        met.append(f"(v.kind IN ('{C.ACTOR}', '{C.ORGANIZATION}') AND v.value IN ({values}))")
    if shape.purpose:
        met.append(f"(v.kind = '{C.PURPOSE}' AND v.value = {sql.param('purpose')})")
    # Every group of criteria (one kind at one level) has a value met.
    return (f"{text} AND {n}.groups = COALESCE((SELECT COUNT(DISTINCT v.{_q('group')}) FROM {criterion} v"
            f" WHERE v.node_id = {n}.id AND ({' OR '.join(met)})), 0)")


def _patients(shape: _Shape, n: str) -> str:
    """The provision row `n` belongs to a patient whose data the outer resource is."""
    references = _q(ReferenceIndex._meta.db_table)
    as_patient = f"{n}.patient_id = {_LOGICAL_ID}"
    if shape.resource_type == "Patient":
        return as_patient
    if shape.resource_type is not None:
        which = f"r.code IN {_in(_patient_links()[shape.resource_type])}"
    else:
        which = _by_type("r", _patient_links())
    linked = (f"{n}.patient_id IN (SELECT r.target_id FROM {references} r WHERE r.resource_id = {_ID}"
              f" AND r.target_type = 'Patient' AND {which})")
    if shape.resource_type is not None:
        return linked
    return f"(({_TYPE} = 'Patient' AND {as_patient}) OR {linked})"


def _decided(shape: _Shape, sql: _Sql, deny: bool) -> str:
    """Some provision of the resource's patients decides `deny`: it applies and no exception of
    its own applies ("applying provisions EXCEPT the parents of applying provisions", so the
    exceptions sit beside their parents in the SQL: SQLite parses only so much nesting)."""
    node = _q(ConsentNode._meta.db_table)
    decider = f"{'' if deny else 'NOT '}n.deny"
    if deny and shape.break_glass:
        decider += " AND n.names_etreat"
    first = f"SELECT n.id FROM {node} n WHERE {_patients(shape, 'n')} AND {decider} AND {_applies(shape, sql, 'n')}"
    second = (f"SELECT e.parent_id FROM {node} e WHERE {_patients(shape, 'e')} AND e.parent_id IS NOT NULL"
              f" AND {_applies(shape, sql, 'e')}")
    return f"EXISTS ({first} EXCEPT {second})"


def _patientless(shape: _Shape) -> str | None:
    """The outer resource is no patient's data (None: it always is one's, a Patient)."""
    if shape.resource_type == "Patient":
        return None
    references = _q(ReferenceIndex._meta.db_table)
    which = (f"r.code IN {_in(_patient_links()[shape.resource_type])}" if shape.resource_type is not None
             else _by_type("r", _patient_links()))
    linked = (f"EXISTS (SELECT 1 FROM {references} r WHERE r.resource_id = {_ID} AND r.target_type = 'Patient'"
              f" AND {which})")
    if shape.resource_type is not None:
        return f"NOT {linked}"
    return f"({_TYPE} <> 'Patient' AND NOT {linked})"


@cache
def _statement(shape: _Shape, vendor: str) -> tuple[str, tuple[str, ...]]:
    """The consent test for one shape: SQL text and the request values its %s take, in order."""
    sql = _Sql()
    text = f"NOT {_decided(shape, sql, True)}"
    if shape.default_deny:
        permitted = _decided(shape, sql, False)
        patientless = _patientless(shape)
        text += f" AND ({permitted}{'' if patientless is None else ' OR ' + patientless})"
    return f"({text})", tuple(sql.keys)


class ConsentAllows(Expression):
    """A condition on resource rows: the Consents of their patients let this request through."""

    conditional = True

    def __init__(self, text: str, params: list[Any], columns: list[Any] | None = None) -> None:
        super().__init__(output_field=BooleanField())
        self.text, self.params = text, params
        self.columns = columns if columns is not None else [F("pk"), F("logical_id"), F("resource_type")]

    def get_source_expressions(self) -> list[Any]:
        return self.columns

    def set_source_expressions(self, exprs: list[Any]) -> None:
        self.columns = list(exprs)

    def as_sql(self, compiler, connection_):  # noqa: ANN001 (Django's signature)
        (id_sql, _), (lid_sql, _), (type_sql, _) = (compiler.compile(c) for c in self.columns)
        text = self.text.replace(_ID, id_sql).replace(_LOGICAL_ID, lid_sql).replace(_TYPE, type_sql)
        return text, list(self.params)


def _organizations(access: Access) -> tuple[str, ...]:
    """The Organizations acting with the token, as "Organization/id": those of the person's
    PractitionerRoles, and the owner of the app's Device. Looked up (one query) only while
    some Consent names an Organization."""
    if not access.organization_consents:
        return ()
    kind, _, ident = (access.fhir_user or "").partition("/")
    devices = TokenIndex.objects.filter(resource_type="Device", code="identifier", system=CLIENT_ID_SYSTEM,
                                        value=access.client_id)
    mine = Q(resource_type="Device", code="organization", resource__in=devices.values("resource_id"))
    if kind == "Practitioner":
        roles = ReferenceIndex.objects.filter(resource_type="PractitionerRole", code="practitioner",
                                              target_type="Practitioner", target_id=ident)
        mine |= Q(resource_type="PractitionerRole", code="organization", resource__in=roles.values("resource_id"))
    found = ReferenceIndex.objects.filter(mine, target_type="Organization").values_list("target_id", flat=True)
    return tuple(sorted({f"Organization/{target}" for target in found}))


def governed(resource_type: str | None) -> bool:
    """Whether Consents can decide about resources of this type (None: of any type)."""
    return resource_type is None or resource_type == "Patient" or resource_type in _patient_links()


def condition(access: Access, resource_type: str | None, interaction: str) -> Q | None:
    """Rows (of `resource_type`, or of any type when None) consent lets this access reach for
    `interaction`; None when consent narrows nothing."""
    test = _test(access, resource_type, interaction)
    return None if test is None else Q(ConsentAllows(*test))


def _test(access: Access, resource_type: str | None, interaction: str) -> tuple[str, list[Any]] | None:
    """The consent test's SQL text (the outer row's columns still as placeholders) and its
    parameters; None when consent narrows nothing."""
    default_deny = settings.FHIR_CONSENT_DEFAULT == "deny" and not access.break_glass
    if not governed(resource_type) or not (access.consents or default_deny):
        return None
    actors = access.memo.get("consent actors")
    if actors is None:
        actors = access.memo["consent actors"] = (*access.actors, *_organizations(access))
    shape = _Shape(resource_type=resource_type, reading=interaction not in WRITES, break_glass=access.break_glass,
                   default_deny=default_deny, actors=len(actors), purpose=bool(access.purpose_of_use))
    text, keys = _statement(shape, connection.vendor)
    values: dict[str, Any] = {f"actor{i}": actor for i, actor in enumerate(actors)}
    values["purpose"] = access.purpose_of_use
    values["now"] = connection.ops.adapt_datetimefield_value(timezone.now())
    return text, [values[key] for key in keys]


# -- one resource by id: read, vread, its history ----------------------------------------------

_ROW = "resource_row"  # not an alias the test itself uses (r, n, e, v, t, d)


@cache
def _one_row_sql(text: str) -> str:
    """The consent test of one current resource, by type and id, as plain SQL."""
    column = lambda name: f"{_q(_ROW)}.{_q(name)}"  # noqa: E731
    test = text.replace(_ID, column("id")).replace(_LOGICAL_ID, column("logical_id")).replace(_TYPE, column("resource_type"))
    return (f"SELECT 1 FROM {_q(Resource._meta.db_table)} {_q(_ROW)} WHERE {column('resource_type')} = %s"
            f" AND {column('logical_id')} = %s AND {column('deleted')} = %s AND {test}")


def allows_one(access: Access, resource_type: str, logical_id: str, interaction: str) -> bool | None:
    """Whether consent lets this access reach the current resource `resource_type/logical_id`
    (False also when there is no such current resource); None when consent decides nothing.

    The hot path of a read by id with a token while Consents exist: the same test as
    `condition`, but one hand-written statement instead of an ORM query built and compiled
    per request (about half of that read's Python time), and on PostgreSQL a prepared
    statement, so the server plans it once per connection rather than per read."""
    test = _test(access, resource_type, interaction)
    if test is None:
        return None
    text, params = test
    # On the primary, like every consent decision (fhir_api.store.routing): never seen late.
    with prepared_cursor(connection) as cursor:
        cursor.execute(_one_row_sql(text), [resource_type, logical_id, False, *params])
        return cursor.fetchone() is not None


# -- break the glass, for the audit trail ------------------------------------------------------

_CHUNK = 200  # ids per statement (SQLite takes at most 999 parameters, the consent test some too)


def _without_break_glass(access: Access) -> Access:
    plain = access.memo.get("without break glass")
    if plain is None:
        plain = access.memo["without break glass"] = replace(access, break_glass=False, memo={})
        if "consent actors" in access.memo:
            plain.memo["consent actors"] = access.memo["consent actors"]
    return plain


def set_aside(access: Access, references: list[tuple[str, str]], interaction: str) -> tuple[str, ...]:
    """Of these current resources (type, id), the ones this break-the-glass access reaches only
    because ETREAT sets consent aside: the same access without it would not ("Type/id", sorted).
    Empty for an access without break-the-glass (no query then)."""
    if not access.break_glass or not references:
        return ()
    plain = _without_break_glass(access)
    by_type: dict[str, set[str]] = {}
    for resource_type, logical_id in references:
        by_type.setdefault(resource_type, set()).add(logical_id)
    found: set[str] = set()
    for resource_type, ids in sorted(by_type.items()):
        allowed = condition(plain, resource_type, interaction)
        if allowed is None:
            continue  # consent decides nothing about this type for this access
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            rows = (Resource.objects.filter(resource_type=resource_type, logical_id__in=ordered[start:start + _CHUNK],
                                            deleted=False)
                    .filter(~allowed).values_list("logical_id", flat=True))
            found.update(f"{resource_type}/{logical_id}" for logical_id in rows)
    return tuple(sorted(found))


def note_set_aside(access: Access, row: Resource, interaction: str) -> None:
    """The write guard's note: this write needs break-the-glass (kept for its AuditEvent)."""
    if access.break_glass and set_aside(access, [(row.resource_type, row.logical_id)], interaction):
        access.memo.setdefault(SET_ASIDE, set()).add(f"{row.resource_type}/{row.logical_id}")
