"""String normalisation shared by indexing and queries (https://hl7.org/fhir/R4/search.html#string).

String search is case- and accent-insensitive: "Zoë" matches "zoe". Both the index and the
query value go through `fold`, so the database only ever compares folded text and the same
SQL works on SQLite and PostgreSQL whatever their collations.
"""
from __future__ import annotations

import sys
import unicodedata
from functools import cache

MAX_LENGTH = 255  # the width of the string index columns


def fold(text: str) -> str:
    """Case- and accent-folded text: NFKD, combining marks dropped, casefolded, spaces squeezed."""
    if text.isascii():  # NFKD changes no ASCII and there are no marks to drop: the common case
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    if not decomposed.isascii():
        decomposed = decomposed.translate(_combining_marks())
    return " ".join(decomposed.casefold().split())


@cache
def _combining_marks() -> dict[int, None]:
    """str.translate table deleting every combining mark (one C pass, not a Python loop per
    character: folding was a tenth of indexing a transaction's Patients and narratives)."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))}


def clip(text: str, length: int = MAX_LENGTH) -> str:
    return text[:length]
