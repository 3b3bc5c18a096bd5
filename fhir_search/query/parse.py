"""A search request read from its parameters (https://hl7.org/fhir/R4/search.html).

Parameters are (name, value) pairs in request order. Repeating a name ANDs, commas inside a
value OR (`\\,` is a literal comma). Result parameters (`_sort`, `_count`, `_include`...) are
read here too. Unknown or unsupported parameters are ignored in lenient mode (and listed in
`ignored`) or answered with 400 in strict mode (`Prefer: handling=strict`, search.html#errors).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from fhir_api.store.errors import BadRequest, TooCostly
from fhir_api.store.structure import resource_types
from fhir_search import terminology
from fhir_search.params import Env, ParamType, Unsupported, param_type
from fhir_search.params.base import split_unescaped
from fhir_search.query import filter as filter_
from fhir_search.query.criteria import Criterion, Plain, UnknownParameter, lookup, resolve
from fhir_search.registry import SearchParam, registry

FORMAT_PARAMS = frozenset({"_format", "_pretty"})
TERMINOLOGY_MODIFIERS = frozenset({"in", "not-in", "above", "below"})
TOTAL_MODES = ("none", "estimate", "accurate")
SUMMARY_MODES = ("true", "false", "text", "data", "count")
_NOT_SUPPORTED_RESULT_PARAMS = frozenset({"_contained", "_containedType", "_graph", "_score"})


@dataclass(frozen=True)
class Clause:
    """One parameter occurrence: its values are ORed; clauses are ANDed."""

    name: str
    raw: str
    criteria: tuple[tuple[str | None, Criterion | filter_.Filter], ...]  # per resource type (None: any type)
    values: tuple[str, ...]


@dataclass(frozen=True)
class SortKey:
    code: str
    descending: bool
    param: SearchParam
    ptype: ParamType


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]` (or `_revinclude`); `params` empty means `*`.

    `source` None (only `_revinclude=*`): a resource of any type, through any reference.
    """

    reverse: bool
    iterate: bool
    source: str | None
    params: tuple[SearchParam, ...]
    target: str | None


@dataclass
class SearchRequest:
    types: tuple[str, ...] | None  # None: every type (system search without _type)
    clauses: list[Clause] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 0
    total: str | None = None
    summary: str | None = None
    elements: list[str] | None = None
    includes: list[Include] = field(default_factory=list)
    cursor: str | None = None
    kept: list[tuple[str, str]] = field(default_factory=list)  # for the self link
    ignored: list[str] = field(default_factory=list)  # messages about what was ignored


class _Parser:
    def __init__(self, types: tuple[str, ...] | None, strict: bool, env: Env) -> None:
        self.request = SearchRequest(types, count=settings.FHIR_DEFAULT_COUNT)
        self.strict = strict
        self.env = env

    def skip(self, message: str, *, unsupported: bool = False) -> None:
        """An unknown or unsupported parameter: 400 when strict, else ignored and noted."""
        if self.strict:
            raise BadRequest(message, code="not-supported" if unsupported else "invalid")
        self.request.ignored.append(message)

    def add(self, name: str, value: str) -> None:
        base_name = name.split(":", 1)[0]
        if base_name in _RESULT_PARAMS:
            getattr(self, "_result_" + base_name.lstrip("_"))(name, value)
            return
        if base_name in _NOT_SUPPORTED_RESULT_PARAMS:
            self.skip(f"The parameter {base_name} is not supported by this server yet", unsupported=True)
            return
        if value == "":
            self.request.ignored.append(f"The parameter {name} has no value and was ignored")
            return
        if base_name == "_filter":
            self._filter(name, value)
            return
        try:
            criteria = self.criteria(name)
        except UnknownParameter as exc:
            self.skip(str(exc))
            return
        except Unsupported as exc:
            self.skip(str(exc), unsupported=True)
            return
        values = tuple(split_unescaped(value, ","))
        if not self._terminology_known(criteria, values, env=self.env):
            return
        self.request.clauses.append(Clause(name, value, criteria, values))
        self.request.kept.append((name, value))

    def _terminology_known(self, criteria: tuple, values: tuple[str, ...], env: Env) -> bool:
        """`:in`, `:not-in`, `:above`, `:below`: is every value set / code system known?

        An unknown one is like an unknown parameter: 400 when strict, else ignored (noted).
        The expansions are cached, so the query builder finds them again for free.
        """
        for _, criterion in criteria:
            if not isinstance(criterion, Plain) or criterion.modifier not in TERMINOLOGY_MODIFIERS:
                continue
            for value in values:
                try:
                    criterion.ptype.parse(criterion.param, value, criterion.modifier, env)
                except terminology.TerminologyError as exc:
                    self.skip(str(exc))
                    return False
                except ValueError:
                    pass  # malformed: the query builder answers 400 with the details
        return True

    def _filter(self, name: str, value: str) -> None:
        """`_filter=...` (search_filter.html): one clause whose criterion is the whole expression."""
        try:
            tree = filter_.parse(value)
        except filter_.FilterSyntaxError as exc:
            raise BadRequest(f"_filter: {exc}") from None
        except Unsupported as exc:
            raise BadRequest(str(exc), code="not-supported") from None
        types = self.request.types
        try:
            criteria = tuple((t, filter_.resolve(tree, t)) for t in (types or (None,)))
        except UnknownParameter as exc:
            self.skip(f"_filter: {exc}")
            return
        except Unsupported as exc:
            raise BadRequest(str(exc), code="not-supported") from None
        self.request.clauses.append(Clause(name, value, criteria, (value,)))
        self.request.kept.append((name, value))

    def criteria(self, name: str) -> tuple[tuple[str | None, Criterion], ...]:
        types = self.request.types
        if types is None:
            return ((None, resolve(None, name)),)
        code = name.split(":", 1)[0].split(".", 1)[0]
        if len(types) > 1 and code in registry().for_type("") and not name.startswith("_has:"):
            return ((None, resolve(None, name)),)  # a common parameter: one condition for all types
        return tuple((t, resolve(t, name)) for t in types)

    # -- result parameters (search.html#return) ----------------------------------------------

    def _result_count(self, name: str, value: str) -> None:
        if not (value.isascii() and value.isdigit()):  # "²".isdigit() is true, int("²") fails
            raise BadRequest(f"_count={value} is not a non-negative integer")
        self.request.count = settings.FHIR_MAX_COUNT if len(value) > 9 else min(int(value), settings.FHIR_MAX_COUNT)
        self.request.kept.append((name, str(self.request.count)))

    def _result_total(self, name: str, value: str) -> None:
        if value not in TOTAL_MODES:
            self.skip(f"_total={value} is not one of {', '.join(TOTAL_MODES)}")
            return
        self.request.total = value
        self.request.kept.append((name, value))

    def _result_summary(self, name: str, value: str) -> None:
        if value not in SUMMARY_MODES:
            raise BadRequest(f"_summary={value} is not one of {', '.join(SUMMARY_MODES)}")
        self.request.summary = value
        self.request.kept.append((name, value))

    def _result_elements(self, name: str, value: str) -> None:
        self.request.elements = [e.strip() for e in value.split(",") if e.strip()]
        self.request.kept.append((name, value))

    def _result_cursor(self, name: str, value: str) -> None:
        self.request.cursor = value

    def _result_type(self, name: str, value: str) -> None:
        pass  # read by the caller (system search) before parsing; kept in the links by it

    def _result_sort(self, name: str, value: str) -> None:
        keys = []
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            descending = item.startswith("-")
            code = item.lstrip("-")
            key = self._sort_key(code, descending)
            if key is None:
                continue
            keys.append(key)
        if keys:
            self.request.sort.extend(keys)
            self.request.kept.append((name, ",".join(("-" if k.descending else "") + k.code for k in keys)))

    def _sort_key(self, code: str, descending: bool) -> SortKey | None:
        types = self.request.types
        found: set[tuple[str, str]] = set()
        param = None
        for t in types or (None,):
            param = lookup(t, code)
            if param is None:
                self.skip(f"Cannot sort by unknown parameter '{code}'")
                return None
            found.add((param.code, param.type))
        ptype = param_type(param) if param else None
        if ptype is None or len(found) > 1 or ptype.sort_field(descending) is None:
            self.skip(f"Cannot sort by '{code}'", unsupported=True)
            return None
        several_types = types is not None and len(types) > 1
        if not ptype.on_resource and several_types and code not in registry().for_type(""):
            self.skip(f"Sorting several types needs a common parameter, not '{code}'", unsupported=True)
            return None
        return SortKey(code, descending, param, ptype)

    def _result_include(self, name: str, value: str) -> None:
        self._include(name, value, reverse=False)

    def _result_revinclude(self, name: str, value: str) -> None:
        self._include(name, value, reverse=True)

    def _include(self, name: str, value: str, reverse: bool) -> None:
        modifier = name.partition(":")[2]
        if modifier not in ("", "iterate", "recurse"):
            self.skip(f"Unknown modifier on {name}")
            return
        iterate = bool(modifier)
        parts = value.split(":")
        if value == "*" and reverse:  # whatever refers to a match, through any reference parameter
            self.request.includes.append(Include(True, iterate, None, (), None))
            self.request.kept.append((name, value))
            return
        if value == "*":
            if self.request.types is None:
                self.skip(f"{name}=* is only supported on a type search", unsupported=True)
                return
            for t in self.request.types:
                self.request.includes.append(Include(False, iterate, t, (), None))
            self.request.kept.append((name, value))
            return
        if len(parts) not in (2, 3) or parts[0] not in resource_types():
            self.skip(f"{name}={value} is not [type]:[parameter] or [type]:[parameter]:[target type]")
            return
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if target is not None and target not in resource_types():
            self.skip(f"{name}={value}: unknown target type {target}")
            return
        searched = self.request.types
        if not reverse and not iterate and searched is not None and source not in searched:
            self.skip(f"{name}={value}: {source} is not a type being searched (use :iterate)")
            return
        if code == "*":
            params: tuple[SearchParam, ...] = ()
        else:
            param = lookup(source, code)
            if param is None or param.type != "reference":
                self.skip(f"{name}={value}: '{code}' is not a reference parameter of {source}")
                return
            params = (param,)
        self.request.includes.append(Include(reverse, iterate, source, params, target))
        self.request.kept.append((name, value))


_RESULT_PARAMS = frozenset(
    {"_count", "_total", "_summary", "_elements", "_cursor", "_type", "_sort", "_include", "_revinclude"}
)


def parse_request(
    types: tuple[str, ...] | None, params: list[tuple[str, str]], *, strict: bool, env: Env
) -> SearchRequest:
    parser = _Parser(types, strict, env)
    formats = []
    asked = [(n, v) for n, v in params if n not in FORMAT_PARAMS]
    if len(asked) > settings.FHIR_SEARCH_MAX_CLAUSES:
        raise TooCostly(f"The search has {len(asked)} parameters; this server's limit is "
                        f"{settings.FHIR_SEARCH_MAX_CLAUSES} (FHIR_SEARCH_MAX_CLAUSES)")
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            # No database stores NUL in text (PostgreSQL refuses it): no resource can match.
            raise BadRequest(f"The search parameter {name.replace(chr(0), '%00')[:100]} contains a NUL character")
        if name in FORMAT_PARAMS:
            formats.append((name, value))  # kept so paging links answer in the same format
            continue
        parser.add(name, value)
    parser.request.kept.extend(formats)
    return parser.request


def parse_types(params: list[tuple[str, str]], strict: bool) -> tuple[str, ...] | None:
    """The `_type` parameter of a system search: the types to search, None for all."""
    wanted: list[str] = []
    for name, value in params:
        if name != "_type":
            continue
        for t in (v.strip() for v in value.split(",")):
            if t and t not in resource_types():
                if strict:
                    raise BadRequest(f"_type: unknown resource type '{t}'")
                continue
            if t and t not in wanted:
                wanted.append(t)
    return tuple(wanted) or None
