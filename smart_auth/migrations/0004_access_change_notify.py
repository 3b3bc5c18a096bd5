"""PostgreSQL triggers that NOTIFY smart_access_changed when tokens, their context, clients or
users change, so each process forgets the token lookups it remembered (smart_auth.token_cache).
Nothing on SQLite, where lookups are not remembered."""
from django.conf import settings
from django.db import migrations

CHANNEL = "smart_access_changed"
FUNCTION = "smart_auth_access_changed"


def _tables(apps):
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_access_token_model, get_application_model

    from smart_auth.models import TokenContext

    return [
        (get_access_token_model()._meta.db_table, "UPDATE OR DELETE"),
        (TokenContext._meta.db_table, "INSERT OR UPDATE OR DELETE"),
        (get_application_model()._meta.db_table, "UPDATE OR DELETE"),
        (get_user_model()._meta.db_table, "UPDATE OR DELETE"),
    ]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table, events in _tables(apps):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {FUNCTION} ON "{table}"')
        schema_editor.execute(
            f'CREATE TRIGGER {FUNCTION} AFTER {events} ON "{table}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, _events in _tables(apps):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {FUNCTION} ON "{table}"')
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        ("smart_auth", "0003_redeemed_code"),
        ("oauth2_provider", "0022_refreshtoken_token_family_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create, drop)]
