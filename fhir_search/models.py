"""Search index tables, one per search parameter type (https://hl7.org/fhir/R4/search.html).

Each row is (resource, resource type, parameter code, normalised value columns). Every
table has a composite index that leads with the parameter code and resource type, then the
value, so a search for one parameter is one index range scan. Rows are replaced as a whole
whenever a resource is written (fhir_search.indexing), inside the same transaction.

Normalisation, done once when indexing so the same SQL works on SQLite and PostgreSQL:
- strings: case- and accent-folded (`normalize_string`), truncated to 255 characters;
- dates: [low, high) ranges in UTC covering the whole precision of the value;
- numbers and quantities: the value as written, and the [low, high] range it covers (equal
  for a plain number, the bounds of a Range; None for an open bound). The precision of a
  *query* number applies at search time (fhir_search.params.number); quantities are also
  kept in canonical UCUM units where a simple conversion exists (fhir_search.ucum);
- `_id` and `_lastUpdated` are not indexed here: the columns of fhir_api_resource answer them.
"""
from __future__ import annotations

from django.db import models

from fhir_api.store.models import Resource


# Index rows name their resource without a database foreign key constraint (db_constraint):
# only the indexer writes them, in the transaction that writes the resource, and deletions
# cascade through the ORM (audit retention). The constraint's check cost one locking lookup
# of the resource row per index row at commit (about a dozen per resource, and 8 per
# AuditEvent of every read): 20 to 25% of PostgreSQL's time in the audited read (issue 9).
class IndexRow(models.Model):
    id = models.BigAutoField(primary_key=True)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    resource_type = models.CharField(max_length=64)
    code = models.CharField(max_length=100)  # the search parameter's code, e.g. "family"

    class Meta:
        abstract = True


def _pattern_index(name: str, *fields: str) -> models.Index:
    # varchar_pattern_ops lets PostgreSQL use the index for LIKE 'prefix%' whatever the
    # database collation; other databases ignore opclasses.
    return models.Index(fields=list(fields), name=name, opclasses=["varchar_pattern_ops"] * len(fields))


class StringIndex(IndexRow):
    value = models.CharField(max_length=255)  # folded: lower case, no accents
    exact = models.CharField(max_length=255)  # as written, for :exact

    class Meta:
        indexes = [
            _pattern_index("string_code_value", "code", "resource_type", "value"),
            models.Index(fields=["code", "resource_type", "exact"], name="string_code_exact"),
        ]


class TokenIndex(IndexRow):
    # Indexed by token_resource_code below, which leads with the resource.
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+", db_index=False,
                                 db_constraint=False)
    system = models.CharField(max_length=255, null=True)  # None: no system given
    value = models.CharField(max_length=255, null=True)  # the code / identifier value
    text = models.CharField(max_length=255, null=True)  # folded display/text for :text
    # identifier.type for :of-type (system|code of the type's coding)
    type_system = models.CharField(max_length=255, null=True)
    type_code = models.CharField(max_length=255, null=True)

    class Meta:
        indexes = [
            models.Index(fields=["code", "resource_type", "value", "system"], name="token_code_value"),
            models.Index(fields=["code", "resource_type", "system"], name="token_code_system"),
            # A resource's own tokens of one parameter: the probe of a page read in date order
            # (fhir_search.query.index_order), the best path for it whatever the statistics say
            # (it also serves deletes, in place of the plain foreign key index).
            models.Index(fields=["resource", "code", "value"], name="token_resource_code"),
        ]


class DateIndex(IndexRow):
    # Named from the resource's side so a date-sorted page can join a resource to its own
    # values of the sort parameter (fhir_search.query.index_order).
    # Indexed by date_resource_code below, which leads with the resource.
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="date_values", db_index=False,
                                 db_constraint=False)
    low = models.DateTimeField(null=True)  # inclusive; None: unbounded below
    high = models.DateTimeField(null=True)  # exclusive; None: unbounded above

    class Meta:
        indexes = [
            # With the resource last, in the direction of the tie-break of a date sort (row id
            # ascending, whichever way the dates go): a date-sorted page walks one of these in
            # order and stops at the page size (fhir_search.query.index_order); the ascending
            # sort reads date_code_low forwards, the descending one date_code_high backwards.
            models.Index(fields=["code", "resource_type", "low", "resource"], name="date_code_low"),
            models.Index(fields=["code", "resource_type", "high", "-resource"], name="date_code_high"),
            # A resource's own values of one parameter: what `_sort` on a date reads per match
            # (fhir_search.query.paging.sort_expression). Leading with the resource, it is the
            # best path whatever the statistics say; without it, a planner that has not seen
            # the table since a bulk load scanned every row of the code per match (minutes).
            models.Index(fields=["resource", "code", "low", "high"], name="date_resource_code"),
        ]


class NumberIndex(IndexRow):
    value = models.FloatField()  # as written
    low = models.FloatField(null=True)  # the target range: equal to value for a plain number
    high = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["code", "resource_type", "value"], name="number_code_value")]


class QuantityIndex(IndexRow):
    value = models.FloatField()
    low = models.FloatField(null=True)  # equal to value, or a Range's bounds (None: open)
    high = models.FloatField(null=True)
    system = models.CharField(max_length=255, null=True)
    unit = models.CharField(max_length=255, null=True)  # Quantity.code, or .unit if no code
    # The same value in canonical UCUM units (e.g. g/L for mg/dL) where the conversion is simple.
    canonical_unit = models.CharField(max_length=255, null=True)
    canonical_value = models.FloatField(null=True)
    canonical_low = models.FloatField(null=True)
    canonical_high = models.FloatField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["code", "resource_type", "value"], name="quantity_code_value"),
            models.Index(fields=["code", "resource_type", "canonical_unit", "canonical_value"],
                         name="quantity_code_canonical"),
        ]


class ReferenceIndex(IndexRow):
    target_type = models.CharField(max_length=64, null=True)  # local reference "Type/id"
    target_id = models.CharField(max_length=64, null=True)
    target_version = models.CharField(max_length=64, null=True)
    url = models.CharField(max_length=512, null=True)  # absolute or canonical reference
    identifier_system = models.CharField(max_length=255, null=True)  # Reference.identifier
    identifier_value = models.CharField(max_length=255, null=True)

    class Meta:
        indexes = [
            models.Index(fields=["code", "resource_type", "target_id", "target_type"],
                         name="reference_code_target"),
            # reverse direction: _revinclude and _has look up who points at a resource
            models.Index(fields=["target_type", "target_id", "code"], name="reference_target"),
            # Partial: most references are local ("Type/id") and have neither a URL nor an
            # identifier, so these two indexes skip most rows (two fewer index insertions per
            # row written); a search on either column (= value) implies IS NOT NULL, which lets
            # PostgreSQL and SQLite use them.
            models.Index(fields=["code", "resource_type", "url"], name="reference_code_url",
                         condition=models.Q(url__isnull=False)),
            models.Index(fields=["code", "resource_type", "identifier_value"], name="reference_code_identifier",
                         condition=models.Q(identifier_value__isnull=False)),
        ]


class UriIndex(IndexRow):
    value = models.CharField(max_length=512)

    class Meta:
        indexes = [_pattern_index("uri_code_value", "code", "resource_type", "value")]


class CompositeIndex(IndexRow):
    """One row per combination of component values taken from the same element.

    R4 composites are token$token, token$quantity, token$date, token$string,
    reference$token and token$number$number; component values are normalised as in
    their own tables (strings folded; numbers, quantities as floats; dates as epoch
    seconds). A token or reference component keeps (system or target type, code or id) in
    cN_system/cN_value; a quantity keeps its system/unit in c2_system/c2_value.
    """

    c1_system = models.CharField(max_length=255, null=True)
    c1_value = models.CharField(max_length=255, null=True)
    c2_system = models.CharField(max_length=255, null=True)
    c2_value = models.CharField(max_length=255, null=True)
    c2_low = models.FloatField(null=True)
    c2_high = models.FloatField(null=True)
    c2_canonical_unit = models.CharField(max_length=255, null=True)
    c2_canonical_low = models.FloatField(null=True)
    c2_canonical_high = models.FloatField(null=True)
    c3_low = models.FloatField(null=True)
    c3_high = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["code", "resource_type", "c1_value"], name="composite_code_c1")]


class FullTextIndex(IndexRow):
    """`_text` (the narrative) and `_content` (all of the resource's text): one row each.

    https://hl7.org/fhir/R4/search.html#text -- `text` holds the words only, folded like
    string values and separated by single spaces (with one before the first and after the
    last), so SQLite can find a word with LIKE '% word %'. PostgreSQL searches the same
    column with a GIN index on to_tsvector('simple', text), which migration 0002 creates
    there only (fhir_search.params.text explains the choice of configuration).
    """

    text = models.TextField()


class PositionIndex(IndexRow):
    """`near` on Location (https://hl7.org/fhir/R4/location.html#positional): one row per position.

    latitude/longitude in degrees (WGS84, as written) for the bounding box, which the
    (code, resource_type, latitude, longitude) index answers; x, y, z are the point on the
    unit sphere (cos lat cos lon, cos lat sin lon, sin lat), computed once when indexing, so
    the exact great-circle test is plain arithmetic in SQL on every database
    (fhir_search.params.near).
    """

    latitude = models.FloatField()
    longitude = models.FloatField()
    x = models.FloatField()
    y = models.FloatField()
    z = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["code", "resource_type", "latitude", "longitude"], name="position_code_lat")]


# -- terminology: the concepts of code systems, indexed (fhir_search.concepts) ----------------


class CodeSystemIndex(models.Model):
    """One code system whose concepts are in ConceptIndex: a stored CodeSystem, or (no resource)
    one the project ships with R4, loaded by migration 0005."""

    id = models.BigAutoField(primary_key=True)
    resource = models.ForeignKey(Resource, null=True, on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=255)
    version = models.CharField(max_length=64, null=True)
    name = models.CharField(max_length=255, null=True)
    hierarchical = models.BooleanField(default=False)  # any concept has a parent
    content = models.CharField(max_length=16, default="complete")  # not-present, example: no concepts here

    class Meta:
        indexes = [models.Index(fields=["url"], name="codesystem_url")]


class ConceptIndex(models.Model):
    """One concept of an indexed code system, with what $lookup and $expand answer."""

    id = models.BigAutoField(primary_key=True)
    code_system = models.ForeignKey(CodeSystemIndex, on_delete=models.CASCADE, related_name="concepts")
    code = models.CharField(max_length=255)
    display = models.TextField(null=True)
    folded = models.CharField(max_length=255)  # display (or code), folded, for the text filter
    inactive = models.BooleanField(default=False)
    designations = models.TextField(blank=True)  # JSON: CodeSystem.concept.designation
    properties = models.TextField(blank=True)  # JSON: CodeSystem.concept.property

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code_system", "code"], name="concept_system_code")]
        indexes = [_pattern_index("concept_system_folded", "folded")]


class ConceptProperty(models.Model):
    """A concept's property value as text, for `property = value` filters of a compose."""

    id = models.BigAutoField(primary_key=True)
    concept = models.ForeignKey(ConceptIndex, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=100)
    value = models.CharField(max_length=255)

    class Meta:
        indexes = [models.Index(fields=["code", "value"], name="concept_property_value")]


class ConceptAncestor(models.Model):
    """The transitive closure of a hierarchy: `ancestor` subsumes `descendant` (itself at depth 0),
    `depth` the shortest distance (1: a direct parent). is-a and :below are one join."""

    id = models.BigAutoField(primary_key=True)
    ancestor = models.ForeignKey(ConceptIndex, on_delete=models.CASCADE, related_name="+")
    descendant = models.ForeignKey(ConceptIndex, on_delete=models.CASCADE, related_name="+")
    depth = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ancestor", "descendant"], name="concept_ancestor_pair")]
        indexes = [models.Index(fields=["descendant", "depth"], name="concept_descendant")]
