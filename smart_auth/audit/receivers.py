"""Signal glue for the audit trail: sign-in, sign-out, failed sign-in, and admin changes.

Django's admin writes a LogEntry for every addition, change and deletion it makes; each one
becomes an AuditEvent (DICOM "Security Alert": apps, people and tokens are security
configuration). FHIR resources edited in the admin go through the repository, which audits
them like any write.
"""
from __future__ import annotations

from typing import Any


def connect() -> None:
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
    from django.db.models.signals import post_save

    from smart_auth.audit import oauth

    user_logged_in.connect(oauth.signed_in, dispatch_uid="smart_auth.audit.signed_in")
    user_logged_out.connect(oauth.signed_out, dispatch_uid="smart_auth.audit.signed_out")
    user_login_failed.connect(oauth.sign_in_failed, dispatch_uid="smart_auth.audit.sign_in_failed")
    post_save.connect(admin_changed, sender=LogEntry, dispatch_uid="smart_auth.audit.admin_changed")


def admin_changed(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """One AuditEvent per admin LogEntry, in the admin's own transaction."""
    from django.contrib.admin.models import ADDITION, DELETION

    from fhir_api.store import repository
    from smart_auth.audit import balp, trail

    if not created or not trail.enabled():
        return
    action = {ADDITION: "C", DELETION: "D"}.get(instance.action_flag, "U")
    who = trail.actor.get()
    user = instance.user
    staff = balp.Actor(address=who.address if who else "", username=user.get_username(),
                       server=who.server if who else "")
    content_type = instance.content_type
    label = f"{content_type.app_label}.{content_type.model}" if content_type else "unknown"
    repository.append_audit([balp.admin_event(staff, action, label, str(instance.object_id or ""),
                                         instance.object_repr or "")])
