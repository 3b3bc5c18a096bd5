"""The audit trail is append-only in SQLite too: triggers refuse UPDATE and DELETE of AuditEvent
rows in the resource and version tables, as the PostgreSQL trigger of 0002 does.

SQLite has no per-transaction setting like PostgreSQL's `SET LOCAL fhir.audit_retention`, so
the retention command's pass is a row in `fhir_audit_retention` that it inserts and deletes
again inside its own transaction (fhir_api.store.audit.prune): SQLite runs one writing
transaction at a time and no other connection ever sees an uncommitted row, so only the
retention transaction's own DELETEs find the row. Index rows are left out here as they are
on PostgreSQL: they are derived from the resource row and `$reindex` rebuilds them.
"""
from django.db import migrations

TABLES = ("fhir_api_resource", "fhir_api_resourceversion")
FLAG_TABLE = "fhir_audit_retention"

UPDATE_TRIGGER = """CREATE TRIGGER {table}_audit_no_update BEFORE UPDATE ON {table}
FOR EACH ROW WHEN OLD.resource_type = 'AuditEvent'
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE of AuditEvent rows in {table} is refused');
END"""
DELETE_TRIGGER = """CREATE TRIGGER {table}_audit_no_delete BEFORE DELETE ON {table}
FOR EACH ROW WHEN OLD.resource_type = 'AuditEvent' AND NOT EXISTS (SELECT 1 FROM {flag})
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE of AuditEvent rows in {table} is refused');
END"""


def statements() -> list[str]:
    """The SQLite DDL, one statement each."""
    out = [f"CREATE TABLE IF NOT EXISTS {FLAG_TABLE} (pass INTEGER NOT NULL)"]
    for table in TABLES:
        out += [UPDATE_TRIGGER.format(table=table), DELETE_TRIGGER.format(table=table, flag=FLAG_TABLE)]
    return out


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL has its trigger (0002); other databases rely on the repository's refusal
    for statement in statements():
        schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_audit_no_update")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_audit_no_delete")
    schema_editor.execute(f"DROP TABLE IF EXISTS {FLAG_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("fhir_api", "0004_resource_type_row")]
    operations = [migrations.RunPython(forwards, backwards)]
