"""The filters of a resource list (django-filter): state, last updated, id, and per type a
few coded elements read from the search index (the same rows a FHIR search uses)."""
from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef, QuerySet

from fhir_api.store.models import Resource
from fhir_search.models import TokenIndex

# Per type: (search parameter code, label, choices) filtered through the token index.
CODED: dict[str, list[tuple[str, str, list[str]]]] = {
    "Patient": [("gender", "Gender", ["male", "female", "other", "unknown"])],
    "Practitioner": [("gender", "Gender", ["male", "female", "other", "unknown"])],
    "Observation": [("status", "Status", ["registered", "preliminary", "final", "amended", "corrected",
                                          "cancelled", "entered-in-error", "unknown"])],
    "Encounter": [("status", "Status", ["planned", "arrived", "triaged", "in-progress", "onleave", "finished",
                                        "cancelled", "entered-in-error", "unknown"])],
    "Condition": [("clinical-status", "Clinical status", ["active", "recurrence", "relapse", "inactive",
                                                          "remission", "resolved"])],
}
STATES = [("current", "Current"), ("deleted", "Deleted"), ("all", "Current and deleted")]


class ResourceFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=STATES, method="filter_state", empty_label=None,
                                        label="State")
    updated_after = django_filters.DateFilter(field_name="last_updated", lookup_expr="gte",
                                              label="Updated on or after (YYYY-MM-DD)")
    updated_before = django_filters.DateFilter(field_name="last_updated", lookup_expr="lt",
                                               label="Updated before (YYYY-MM-DD)")
    logical_id = django_filters.CharFilter(field_name="logical_id", lookup_expr="startswith",
                                           label="Id starts with")

    class Meta:
        model = Resource
        fields: list[str] = []

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "deleted":
            return queryset.filter(deleted=True)
        if value == "all":
            return queryset
        return queryset.filter(deleted=False)


def _coded_filter(code: str, label: str, choices: list[str]) -> django_filters.ChoiceFilter:
    def apply(queryset: QuerySet, name: str, value: str) -> QuerySet:
        rows = TokenIndex.objects.filter(resource=OuterRef("pk"), code=code, value=value)
        return queryset.filter(Exists(rows))

    return django_filters.ChoiceFilter(choices=[(c, c) for c in choices], method=apply, label=label)


def filter_for(resource_type: str, data, queryset: QuerySet) -> ResourceFilter:
    coded = CODED.get(resource_type, [])
    if not coded:
        return ResourceFilter(data, queryset=queryset)
    attrs = {code.replace("-", "_"): _coded_filter(code, label, choices) for code, label, choices in coded}
    cls = type(f"{resource_type}Filter", (ResourceFilter,), attrs)
    return cls(data, queryset=queryset)
