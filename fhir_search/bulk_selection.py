"""Which rows of one type a Bulk Data export holds, as one SQL condition.

https://hl7.org/fhir/uv/bulkdata/export.html -- an export is narrowed by the level it was
called at (system; all patients; one Group's patients; the `patient` parameter), by
`_typeFilter` (search queries, OR-ed per type), and by what the requester's token may read
(the same access SQL as every search, fhir_search.access). Patient and Group exports hold
the R4 Patient compartment of their patients and nothing else: the Patient resources
themselves and resources whose compartment parameters refer to one of them.
"""
from __future__ import annotations

from dataclasses import replace
from functools import reduce
from operator import and_, or_
from urllib.parse import parse_qsl

import orjson
from django.db.models import Exists, OuterRef, Q

from fhir_api.store.errors import BadRequest
from fhir_api.store.models import Resource, ResourceVersion
from fhir_search import access as access_sql
from fhir_search import compartments
from fhir_search import consent as consent_sql
from fhir_search.indexing import rows_for
from fhir_search.models import ReferenceIndex
from fhir_search.params import Env
from fhir_search.query.build import NOTHING, clause_condition
from fhir_search.query.parse import parse_request
from smart_auth.access import Access, ConsentNode


def compartment_types() -> frozenset[str]:
    """Types a Patient or Group export may hold: Patient and the Patient compartment's members."""
    return frozenset(compartments.definitions().get("Patient", {})) | {"Patient"}


def group_patients(group_id: str):
    """The ids of the Patients a Group lists in `member.entity` (a subquery), None if no Group."""
    row = Resource.objects.filter(resource_type="Group", logical_id=group_id, deleted=False).values("id").first()
    if row is None:
        return None
    return ReferenceIndex.objects.filter(resource_id=row["id"], code="member", target_type="Patient").values(
        "target_id")


def patients_condition(resource_type: str, patients) -> Q:
    """Rows of `resource_type` in the compartment of these patients (ids, a subquery, or None
    for every patient)."""
    if resource_type == "Patient":
        return Q() if patients is None else Q(logical_id__in=patients)
    params = compartments.member_params("Patient", resource_type)
    if not params:
        return NOTHING
    links = ReferenceIndex.objects.filter(resource_type=resource_type, code__in=params, target_type="Patient")
    if patients is not None:
        links = links.filter(target_id__in=patients)
    return Q(pk__in=links.values("resource_id"))


def type_filter_condition(resource_type: str, queries: list[str], access: Access | None) -> Q:
    """`_typeFilter` queries of one type, OR-ed; 400 for a query the search engine refuses."""
    env = Env(visible=access_sql.visible_for("s", access) if access is not None else None)
    parts = []
    for query in queries:
        params = parse_qsl(query, keep_blank_values=True)
        if any(name.startswith("_") and name not in ("_id", "_lastUpdated", "_tag", "_profile", "_security",
                                                     "_has", "_text", "_content", "_list", "_filter")
               for name, _ in params):
            raise BadRequest(f"_typeFilter {resource_type}?{query}: only search parameters may be used, "
                             "not result parameters such as _count, _sort or _include")
        request = parse_request((resource_type,), params, strict=True, env=env)
        conditions = [clause_condition(clause, env) for clause in request.clauses]
        parts.append(reduce(and_, conditions) if conditions else Q())
    return reduce(or_, parts) if parts else Q()


def condition(resource_type: str, *, patients=None, compartment: bool = False, type_filters: list[str] = (),
              access: Access | None = None) -> Q | None:
    """The rows of `resource_type` the export holds (beyond type, time and deletion), or None
    when the access reaches none of them."""
    q = Q()
    if access is not None:
        reach = access_sql.type_condition(access, resource_type, "r")
        if reach is access_sql.NOTHING:
            return None
        if reach is not None:
            q &= reach
    if compartment:
        q &= patients_condition(resource_type, patients)
    if type_filters:
        q &= type_filter_condition(resource_type, list(type_filters), access)
    return q


# -- deletions (the manifest's `deleted` files, for `_since` exports) --------------------------
#
# A deleted resource has no index rows, so the SQL conditions above cannot say whether it was in
# an export; the compartment is decided on the version before the deletion instead, and what
# depends on search (a `_typeFilter`) or on row-level access (a compartment-bound scope, consent)
# cannot be decided at all: those deletions are left out, and the export says so.


def deletions_unknowable(resource_type: str, *, type_filters: list[str] = (), access: Access | None = None
                         ) -> str | None:
    """Why the deletions of `resource_type` cannot be listed for this export (None: they can)."""
    if type_filters:
        return (f"deleted {resource_type} resources are not listed: whether a deleted resource matched "
                "the _typeFilter cannot be known")
    if access is None:
        return None
    if not access.unrestricted(resource_type, "r"):
        return (f"deleted {resource_type} resources are not listed: the access token reaches only some "
                f"{resource_type} resources, and a deleted one cannot be checked")
    # A job's Access (rebuilt from its snapshot) assumes Consents are in force; ask the table.
    now = replace(access, consents=ConsentNode.objects.exists(), memo={})
    if consent_sql.condition(now, resource_type, "r") is not None:
        return (f"deleted {resource_type} resources are not listed: Consents decide who may read them, "
                "and a deleted one cannot be checked")
    return None


def deletions(resource_type: str, since, at):
    """(row id, logical id, version) of the resources of a type deleted after `since` and
    still deleted at `at` (the snapshot), in row id order."""
    later = ResourceVersion.objects.filter(resource_id=OuterRef("resource_id"),
                                           version_id__gt=OuterRef("version_id"), last_updated__lte=at)
    deleted = ResourceVersion.objects.filter(resource_type=resource_type, deleted=True,
                                             last_updated__gt=since, last_updated__lte=at).exclude(Exists(later))
    return deleted.order_by("resource_id").values_list("resource_id", "logical_id", "version_id")


def was_in_compartment(resource_type: str, row_id: int, logical_id: str, version_id: int,
                       patients: set[str] | None) -> bool:
    """Whether the version before a deletion was in the Patient compartment of one of
    `patients` (None: of any patient)."""
    if resource_type == "Patient":
        return patients is None or logical_id in patients
    before = (ResourceVersion.objects.filter(resource_id=row_id, version_id__lt=version_id, deleted=False)
              .order_by("-version_id").values_list("data", flat=True).first())
    if not before:
        return False
    params = set(compartments.member_params("Patient", resource_type))
    resource = Resource(pk=row_id, resource_type=resource_type, logical_id=logical_id)
    rows = rows_for(resource, orjson.loads(before))
    return any(row["code"] in params and row.get("target_type") == "Patient" and
               (patients is None or row.get("target_id") in patients) for row in rows.get(ReferenceIndex, []))
