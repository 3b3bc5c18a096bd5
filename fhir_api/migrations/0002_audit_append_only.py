"""The audit trail is append-only in the database too (PostgreSQL): a trigger refuses UPDATE and
DELETE of AuditEvent rows in the resource and version tables. The retention command deletes
old events in a transaction that first runs `SET LOCAL fhir.audit_retention = 'on'`; nothing
else sets it. Other databases (SQLite) rely on the repository's refusal alone.
"""
from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION fhir_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('fhir.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % of AuditEvent rows in % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER {table}_audit_append_only BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW WHEN (OLD.resource_type = 'AuditEvent') EXECUTE FUNCTION fhir_audit_append_only();
"""
TABLES = ("fhir_api_resource", "fhir_api_resourceversion")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)  # no placeholders: RAISE uses % itself
    for table in TABLES:
        schema_editor.execute(TRIGGER.format(table=table))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_audit_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS fhir_audit_append_only()")


class Migration(migrations.Migration):
    dependencies = [("fhir_api", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
