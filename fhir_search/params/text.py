"""`_text` and `_content`: full-text search (https://hl7.org/fhir/R4/search.html#text).

`_text` searches the narrative (`text.div`, tags stripped), `_content` all the text of the
resource (every string, code and number value, and the narrative; not base64 data). A
query is words, all of which must appear (`_text=chest pain`), `"quoted words"` that must
appear in that order, and `-word` for a word that must not appear; commas OR as usual.

Both the stored text and the query go through the same tokenizer: folded like string
values (case and accents ignored), split into runs of letters and digits. So a word
matches a whole word only, and the result is the same on both databases:

- PostgreSQL: `to_tsvector('simple', text) @@ to_tsquery('simple', ...)` over a GIN index.
  The 'simple' configuration, not 'english': resources are written in many languages,
  hold codes and names that stemming would mangle ("Jones" -> "jone"), and with no
  stemming and no stop words the results match SQLite's word for word;
- SQLite: `text LIKE '% word %'` per word (a scan of the type's rows; a fallback).
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, F, Func, Q, Value

from fhir_search.models import FullTextIndex
from fhir_search.normalize import fold
from fhir_search.params.base import Env, ParamType, unescape
from fhir_search.registry import SearchParam

CONFIG = "simple"
# Text kept per row: well under PostgreSQL's 1 MB tsvector limit and its 16383 word
# positions, so an enormous resource can never fail its write.
MAX_TEXT = 100_000
_WORD = re.compile(r"[^\W_]+")
_TAG = re.compile(r"<[^>]*>")
# Keys whose values are not text a person would search for: the type, ids, meta (version,
# timestamps), base64 payloads (Attachment.data, Binary.data, Signature.data).
_SKIPPED_KEYS = frozenset({"resourceType", "id", "meta", "data"})


def words(text: str) -> list[str]:
    """The searchable words of a text: folded, runs of letters and digits."""
    return _WORD.findall(text.lower() if text.isascii() else fold(text))  # ASCII: folding is lower()


def _document(parts: Iterable[str]) -> str | None:
    """The stored form: the words between single spaces, one before and one after."""
    found = words(" ".join(parts))
    if not found:
        return None
    text = f" {' '.join(found)} "
    if len(text) > MAX_TEXT:
        text = text[: text.rindex(" ", 0, MAX_TEXT) + 1]
    return text


def narrative(content: dict[str, Any]) -> str:
    """The narrative's text: the XHTML of text.div without its tags."""
    text = content.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    return html.unescape(_TAG.sub(" ", div)) if isinstance(div, str) else ""


def _strings(value: Any) -> list[str]:
    """Every text value of a JSON tree, the narrative as plain text."""
    out: list[str] = []
    _collect(value, out)
    return out


def _collect(value: Any, out: list[str]) -> None:
    # Appends to one list: nested generators (`yield from` at every level) cost a resume per
    # level per string, and this runs over every resource written.
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, child in value.items():
            if key in _SKIPPED_KEYS:
                continue
            if key == "text" and isinstance(child, dict):  # a Narrative
                out.append(narrative(value))
            else:
                _collect(child, out)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append(str(value))


def documents(content: dict[str, Any]) -> dict[str, str]:
    """The full-text rows of a resource: {"_text": ..., "_content": ...} (absent when empty)."""
    out = {}
    text = _document((narrative(content),))
    if text:
        out["_text"] = text
    everything = _document(_strings(content))
    if everything:
        out["_content"] = everything
    return out


@dataclass(frozen=True, slots=True)
class TextQuery:
    # (negated, words that must follow each other); one word is a phrase of one
    terms: tuple[tuple[bool, tuple[str, ...]], ...]


_TERM = re.compile(r'(-?)"([^"]*)"|(-?)(\S+)')


def parse_text(raw: str) -> TextQuery:
    terms = []
    for m in _TERM.finditer(raw):
        negated = bool(m.group(1) or m.group(3))
        phrase = tuple(words(m.group(2) if m.group(2) is not None else m.group(4)))
        if phrase:
            terms.append((negated, phrase))
    if not any(not negated for negated, _ in terms):
        raise ValueError(f"{raw!r} has no word to search for")
    return TextQuery(tuple(terms))


def tsquery(query: TextQuery) -> str:
    """The to_tsquery text: words are letters and digits only, so nothing needs quoting."""
    parts = []
    for negated, phrase in query.terms:
        term = " <-> ".join(phrase)
        term = f"({term})" if len(phrase) > 1 else term
        parts.append(f"!{term}" if negated else term)
    return " & ".join(parts)


class _TsMatch(Func):
    """`to_tsvector('simple', column) @@ to_tsquery('simple', query)`: the GIN index's expression."""

    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra):  # type: ignore[override]
        column, query = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        query_sql, query_params = compiler.compile(query)
        sql = (f"to_tsvector('{CONFIG}'::regconfig, {column_sql}) "
               f"@@ to_tsquery('{CONFIG}'::regconfig, {query_sql})")
        return sql, (*column_params, *query_params)


def text_condition(query: TextQuery) -> Q:
    """The condition on FullTextIndex rows for one query value."""
    if connection.vendor == "postgresql":
        return Q(_TsMatch(F("text"), Value(tsquery(query))))
    q = Q()
    for negated, phrase in query.terms:
        found = Q(text__contains=f" {' '.join(phrase)} ")
        q &= ~found if negated else found
    return q


class TextParam(ParamType):
    """`_text` and `_content`: rows of FullTextIndex, filled by fhir_search.indexing."""

    model = FullTextIndex

    def __init__(self, name: str) -> None:
        self.name = name

    def parse(self, param: SearchParam, raw: str, modifier: str | None, env: Env) -> TextQuery:
        return parse_text(unescape(raw))

    def condition(self, param: SearchParam, parsed: TextQuery, modifier: str | None) -> Q:
        return text_condition(parsed)
