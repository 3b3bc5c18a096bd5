"""String normalisation shared by indexing and queries (https://hl7.org/fhir/R4/search.html#string).

String search is case- and accent-insensitive: "Zoë" matches "zoe". Both the index and the
query value go through `fold`, so the database only ever compares folded text and the same
SQL works on SQLite and PostgreSQL whatever their collations.
"""
from __future__ import annotations

import unicodedata

MAX_LENGTH = 255  # the width of the string index columns


def fold(text: str) -> str:
    """Case- and accent-folded text: NFKD, combining marks dropped, casefolded, spaces squeezed."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def clip(text: str, length: int = MAX_LENGTH) -> str:
    return text[:length]
