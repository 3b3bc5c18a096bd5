"""Which rows of one type a Bulk Data export holds, as one SQL condition.

https://hl7.org/fhir/uv/bulkdata/export.html -- an export is narrowed by the level it was
called at (system; all patients; one Group's patients; the `patient` parameter), by
`_typeFilter` (search queries, OR-ed per type), and by what the requester's token may read
(the same access SQL as every search, fhir_search.access). Patient and Group exports hold
the R4 Patient compartment of their patients and nothing else: the Patient resources
themselves and resources whose compartment parameters refer to one of them.
"""
from __future__ import annotations

from functools import reduce
from operator import and_, or_
from urllib.parse import parse_qsl

from django.db.models import Q

from fhir_api.store.errors import BadRequest
from fhir_api.store.models import Resource
from fhir_search import access as access_sql
from fhir_search import compartments
from fhir_search.models import ReferenceIndex
from fhir_search.params import Env
from fhir_search.query.build import NOTHING, clause_condition
from fhir_search.query.parse import parse_request
from smart_auth.access import Access


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
