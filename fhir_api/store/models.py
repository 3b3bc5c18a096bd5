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
        indexes = [
            models.Index(fields=["resource_type", "last_updated"], name="resource_type_updated"),
            # One type's rows in row id order: a Bulk Data export streams each type this way
            # (without it PostgreSQL walks the whole table's primary key once per type).
            models.Index(fields=["resource_type", "id"], name="resource_type_row"),
        ]

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


class Job(models.Model):
    """One piece of long work ($export, $reindex, a load), run outside the request.

    The row is the job's whole state, so any app server answers its status and any worker
    (Celery, the database-polled runner, the embedded thread) can run or resume it:
    `checkpoint` is where the work stands after its last committed step, `lease` names the
    worker that holds it now and `heartbeat_at` says that worker is alive (fhir_api.store.jobs).
    """

    QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, EXPIRED = (
        "queued", "running", "completed", "failed", "cancelled", "expired")

    id = models.CharField(primary_key=True, max_length=64)  # unguessable: it is in status URLs
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, default=QUEUED)
    # Who asked: the OAuth client and user of the token (blank with authentication off);
    # only the same client may see the job or its files.
    owner_client = models.CharField(max_length=255, blank=True, default="")
    owner_user = models.BigIntegerField(null=True)
    progress = models.FloatField(default=0.0)  # 0..1
    progress_note = models.CharField(max_length=255, blank=True, default="")
    checkpoint = models.JSONField(default=dict)
    result = models.JSONField(null=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    lease = models.CharField(max_length=64, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    expires_at = models.DateTimeField(null=True)
    polled_at = models.DateTimeField(null=True)  # the last status poll (429 for a poll too soon)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="job_status_created")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"


class LoadedFile(models.Model):
    """A file `manage.py load` loaded completely (what `--resume` skips)."""

    sha256 = models.CharField(max_length=64, unique=True)
    path = models.TextField()
    resources = models.PositiveIntegerField(default=0)
    loaded_at = models.DateTimeField(auto_now_add=True)
