"""`manage.py audit_retention`: delete AuditEvents older than FHIR_AUDIT_RETENTION_DAYS.

The only way AuditEvents are ever removed (the API, the admin and, on PostgreSQL, the
database refuse it otherwise). With the setting unset (or 0) nothing is deleted. Run it from
cron; the run itself is recorded in the audit trail (DICOM "Audit Log Used").
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fhir_api.store import audit as store_audit, repository
from smart_auth.audit import balp


class Command(BaseCommand):
    help = "Delete AuditEvents older than FHIR_AUDIT_RETENTION_DAYS (unset: keep everything)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="keep this many days instead of FHIR_AUDIT_RETENTION_DAYS")

    def handle(self, *args, days=None, **options):
        days = days if days is not None else settings.FHIR_AUDIT_RETENTION_DAYS
        if not days:
            self.stdout.write("FHIR_AUDIT_RETENTION_DAYS is unset: every AuditEvent is kept")
            return
        if days < 1:
            raise CommandError("--days must be at least 1")
        before = datetime.now(timezone.utc) - timedelta(days=days)
        deleted = store_audit.prune(before)
        actor = balp.Actor(username="audit_retention (management command)")
        event = balp.event(actor, type_={"system": balp.DCM, "code": "110101", "display": "Audit Log Used"},
                           subtype={"system": balp.OAUTH_EVENTS, "code": "retention",
                                    "display": f"deleted {deleted} AuditEvents recorded before {balp.instant(before)}"},
                           action="D")
        repository.append_audit([event])
        self.stdout.write(f"deleted {deleted} AuditEvents recorded before {balp.instant(before)} "
                          f"(FHIR_AUDIT_RETENTION_DAYS={days})")
