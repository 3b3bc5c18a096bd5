"""The concepts of code systems in tables: codes, displays, properties and the closure of the hierarchy.

https://hl7.org/fhir/R4/codesystem.html#hierarchy -- a CodeSystem's `concept` tree (nesting,
plus `parent`/`subsumedBy` properties) is written once into ConceptIndex rows and the
ConceptAncestor closure (every ancestor-descendant pair with its shortest distance, each
concept its own ancestor at depth 0). Then `is-a`, `descendent-of`, `:below`, `:above`,
`$subsumes` and a concept's parents and children are index lookups, and a value set over a
100,000-concept system expands page by page in SQL instead of re-reading the CodeSystem JSON.

Stored CodeSystems are indexed when written (fhir_search.receivers), inside the write's
transaction; the R4 code systems the project ships are loaded by migration 0005 (no resource).
A stored CodeSystem with the URL of a shipped one takes its place.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection

from fhir_api.store.models import Resource
from fhir_api.store.terminology import TerminologyError, property_text, shipped
from fhir_search.models import CodeSystemIndex, ConceptAncestor, ConceptIndex, ConceptProperty
from fhir_search.normalize import clip, fold

BATCH = 2000
# CodeSystem.content values whose concepts are the system's (a fragment: some of them).
LISTED = frozenset({"complete", "fragment", "supplement"})
# Properties that mark a concept inactive (codesystem.html#defined-props).
_INACTIVE_STATUS = frozenset({"retired", "inactive"})


@dataclass
class _Parsed:
    code: str
    display: str | None
    inactive: bool
    designations: list[dict[str, Any]]
    properties: list[dict[str, Any]]
    parents: set[str] = field(default_factory=set)


def _concepts(cs: dict[str, Any]) -> dict[str, _Parsed]:
    out: dict[str, _Parsed] = {}

    def walk(concepts: Any, parent: str | None) -> None:
        for concept in concepts if isinstance(concepts, list) else ():
            code = concept.get("code") if isinstance(concept, dict) else None
            if not isinstance(code, str) or not code:
                continue
            props = [p for p in concept.get("property", ()) if isinstance(p, dict)]
            found = out.get(code)
            if found is None:
                found = out[code] = _Parsed(
                    code, concept.get("display") if isinstance(concept.get("display"), str) else None,
                    _is_inactive(props), list(concept.get("designation", ())), props)
            if parent is not None:
                found.parents.add(parent)
            for p in props:
                if p.get("code") in ("parent", "subsumedBy"):
                    found.parents.update(property_text(v) for k, v in p.items() if k.startswith("value"))
            walk(concept.get("concept", ()), code)

    walk(cs.get("concept", ()), None)
    for parsed in out.values():
        parsed.parents &= out.keys()  # a parent the system does not define is no edge
        parsed.parents.discard(parsed.code)
    return out


def _is_inactive(props: list[dict[str, Any]]) -> bool:
    for p in props:
        if p.get("code") == "inactive" and p.get("valueBoolean") is True:
            return True
        if p.get("code") == "status" and p.get("valueCode") in _INACTIVE_STATUS:
            return True
        if p.get("code") == "deprecated":
            return True
    return False


def _ancestors(concepts: dict[str, _Parsed]) -> dict[str, dict[str, int]]:
    """Every concept's ancestors with their shortest distance (itself at 0); cycles are cut."""
    memo: dict[str, dict[str, int]] = {}
    for start in concepts:
        if start in memo:
            continue
        # Depth-first without recursion (hierarchies may be deep), finishing parents first.
        stack: list[tuple[str, bool]] = [(start, False)]
        on_path: set[str] = set()
        while stack:
            code, done = stack.pop()
            if done:
                on_path.discard(code)
                mine = {code: 0}
                for parent in concepts[code].parents:
                    for ancestor, depth in memo.get(parent, {}).items():
                        if depth + 1 < mine.get(ancestor, 1 << 30):
                            mine[ancestor] = depth + 1
                memo[code] = mine
                continue
            if code in memo or code in on_path:
                continue
            on_path.add(code)
            stack.append((code, True))
            stack.extend((p, False) for p in concepts[code].parents if p not in memo and p not in on_path)
    return memo


def index_code_system(cs: dict[str, Any], resource_id: int | None = None,
                      tables: Any = None) -> CodeSystemIndex | None:
    """Write a CodeSystem's concepts and closure (none when its content is not-present or example).

    `tables` (an object with the four models) lets migration 0005 pass its historical models.
    """
    if not isinstance(cs.get("url"), str):
        return None
    content = str(cs.get("content") or "complete")
    header_model = tables.CodeSystemIndex if tables else CodeSystemIndex
    concept_model = tables.ConceptIndex if tables else ConceptIndex
    property_model = tables.ConceptProperty if tables else ConceptProperty
    ancestor_model = tables.ConceptAncestor if tables else ConceptAncestor
    concepts = _concepts(cs) if content in LISTED else {}
    header = header_model.objects.create(content=clip(content, 16),
        resource_id=resource_id, url=clip(cs["url"]), version=clip(str(cs.get("version")), 64) if cs.get("version")
        else None, name=clip(str(cs.get("name") or cs.get("title") or ""), 255) or None,
        hierarchical=any(c.parents for c in concepts.values()))
    parsed = list(concepts.values())
    _insert(concept_model, ("code_system_id", "code", "display", "folded", "inactive", "designations", "properties"), (
        (header.id, clip(c.code), c.display, clip(fold(c.display or c.code)), c.inactive,
         orjson.dumps(c.designations).decode() if c.designations else "",
         orjson.dumps(c.properties).decode() if c.properties else "")
        for c in parsed))
    ids = dict(concept_model.objects.filter(code_system_id=header.id).values_list("code", "id"))
    properties = [
        (ids[clip(c.code)], clip(str(p.get("code", "")), 100), clip(property_text(v)))
        for c in parsed for p in c.properties for k, v in p.items() if k.startswith("value")
    ]
    _insert(property_model, ("concept_id", "code", "value"), properties)
    closure = (
        (ids[clip(a)], ids[clip(code)], depth)
        for code, ancestors in _ancestors(concepts).items() for a, depth in ancestors.items()
    )
    _insert(ancestor_model, ("ancestor_id", "descendant_id", "depth"), closure)
    return header


def _insert(model: Any, columns: tuple[str, ...], rows: Any) -> None:
    """Plain multi-row INSERTs: a 100,000-concept system has hundreds of thousands of closure
    rows, and building a model instance for each costs more than the database does."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    per = 500  # rows per statement: under SQLite's limit of bound variables
    with connection.cursor() as cursor:
        for chunk in _chunks(rows):
            for i in range(0, len(chunk), per):
                part = chunk[i:i + per]
                cursor.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([marks] * len(part))}",
                               [v for row in part for v in row])


def _chunks(items: Any) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def written(resource: Resource, content: dict[str, Any] | None) -> None:
    """A CodeSystem was created, updated or deleted: replace its concepts (none once deleted)."""
    CodeSystemIndex.objects.filter(resource=resource).delete()
    if content is not None and not resource.deleted:
        index_code_system(content, resource.pk)


def load_shipped(tables: Any = None) -> int:
    """Index every code system the project ships (migration 0005); answers how many."""
    count = 0
    for cs in shipped()["CodeSystem"].values():
        if index_code_system(cs, None, tables) is not None:
            count += 1
    return count


def code_system(url: str) -> CodeSystemIndex:
    """The indexed code system of a URL (`|version` ignored): the latest stored one, else the shipped one."""
    canonical = clip(url.split("|", 1)[0])
    rows = CodeSystemIndex.objects.filter(url=canonical)
    found = rows.filter(resource__isnull=False).order_by("-id").first() or rows.filter(resource__isnull=True).first()
    if found is not None:
        if found.content not in LISTED:
            raise TerminologyError(f"The code system {canonical} does not list its codes (content={found.content})")
        return found
    raise TerminologyError(f"The code system {canonical} is not known to this server")


def concept(system: CodeSystemIndex, code: str) -> ConceptIndex | None:
    return ConceptIndex.objects.filter(code_system=system, code=clip(code)).first()


def related(found: ConceptIndex, up: bool, depth: int | None = 1) -> list[ConceptIndex]:
    """Direct parents (up) or children of a concept; every ancestor/descendant with depth None."""
    pairs = ConceptAncestor.objects.filter(**({"descendant": found} if up else {"ancestor": found}))
    pairs = pairs.filter(depth=depth) if depth is not None else pairs.filter(depth__gt=0)
    other = "ancestor_id" if up else "descendant_id"
    return list(ConceptIndex.objects.filter(id__in=pairs.values(other)).order_by("code"))


def subsumes(system: CodeSystemIndex, code_a: str, code_b: str) -> str:
    """$subsumes: equivalent, subsumes (A is an ancestor of B), subsumed-by or not-subsumed."""
    a, b = concept(system, code_a), concept(system, code_b)
    for code, found in ((code_a, a), (code_b, b)):
        if found is None:
            raise TerminologyError(f"The code {code!r} is not in the code system {system.url}")
    assert a is not None and b is not None
    if a.id == b.id:
        return "equivalent"
    if ConceptAncestor.objects.filter(ancestor=a, descendant=b).exists():
        return "subsumes"
    if ConceptAncestor.objects.filter(ancestor=b, descendant=a).exists():
        return "subsumed-by"
    return "not-subsumed"


def load_json(text: str) -> list[dict[str, Any]]:
    return orjson.loads(text) if text else []
