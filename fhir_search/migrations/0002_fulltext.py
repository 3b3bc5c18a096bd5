"""The full-text index of `_text` and `_content` (https://hl7.org/fhir/R4/search.html#text).

The table is the same on every database; PostgreSQL also gets a GIN index over
to_tsvector('simple', text), the exact expression fhir_search.params.text queries, so a
word search reads the index instead of every row. Other databases (SQLite) fall back to
LIKE over the folded words and need no such index.
"""

import django.db.models.deletion
from django.db import migrations, models

GIN_INDEX = "fulltext_text_tsv"


def create_gin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {GIN_INDEX} ON fhir_search_fulltextindex "
            "USING gin (to_tsvector('simple'::regconfig, text))"
        )


def drop_gin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("fhir_api", "0001_initial"),
        ("fhir_search", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="FullTextIndex",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("resource_type", models.CharField(max_length=64)),
                ("code", models.CharField(max_length=100)),
                ("text", models.TextField()),
                (
                    "resource",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="fhir_api.resource"
                    ),
                ),
            ],
            options={
                "abstract": False,
            },
        ),
        migrations.RunPython(create_gin_index, drop_gin_index, elidable=False),
    ]
