"""The versioned resource store: one current row per resource, one immutable row per version.

https://hl7.org/fhir/R4/http.html#history -- every write makes a new version; a delete is a
version too (logical delete), so history keeps everything. Rows hold the JSON exactly as it
is served, `meta.versionId` and `meta.lastUpdated` included. Only `fhir_api.store.repository`
writes these tables.
"""
from __future__ import annotations

from django.db import models


class Resource(models.Model):
    """The current version of one resource (also kept, deleted, as a tombstone)."""

    id = models.BigAutoField(primary_key=True)
    resource_type = models.CharField(max_length=64)
    logical_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField()
    last_updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    data = models.TextField(blank=True)  # JSON as served; "" once deleted

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resource_type", "logical_id"], name="resource_type_logical_id"),
        ]
        indexes = [models.Index(fields=["resource_type", "last_updated"], name="resource_type_updated")]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.logical_id}"


class ResourceVersion(models.Model):
    """One version of a resource, never changed once written."""

    id = models.BigAutoField(primary_key=True)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="versions")
    # Denormalised so type and system history page through one index without a join.
    resource_type = models.CharField(max_length=64)
    logical_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField()
    last_updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    method = models.CharField(max_length=6)  # POST, PUT, PATCH or DELETE
    data = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resource", "version_id"], name="version_resource_version"),
        ]
        indexes = [
            models.Index(fields=["resource_type", "last_updated", "id"], name="version_type_updated"),
            models.Index(fields=["last_updated", "id"], name="version_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.logical_id}/_history/{self.version_id}"
