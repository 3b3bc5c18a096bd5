"""The `_filter` parameter: its grammar, and what its names mean per resource type.

https://hl7.org/fhir/R4/search_filter.html -- `_filter=name co "pet" and (birthdate ge
1990-01-01 or not (gender eq male))`. A small recursive-descent parser reads the
expression into a tree; `resolve` looks its parameter names up like any search
parameter (a chain such as `subject.name` included) and checks that each operator
applies to the parameter's type; fhir_search.query.build turns the tree into the same
SQL conditions over the index tables as the plain parameters.

Grammar (search_filter.html#grammar), with `and` binding tighter than `or`, and `not`
tightest, as in SQL and FHIRPath:

    expression := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" expression ")" | comparison
    comparison := paramPath SP compareOp SP value
    value      := "quoted string" (JSON escapes) | token (no spaces, no ")" or unmatched "]")

Not supported: filters on sub-elements (`related[type eq has-member].target`), which
answer 400 not-supported, as does an operator that does not apply to the parameter's type.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from fhir_api.store.errors import TooCostly
from fhir_search.params import Unsupported
from fhir_search.query.criteria import Chain, Criterion, Has, Plain
from fhir_search.query.criteria import resolve as resolve_name

# Operators (search_filter.html#ops) and the parameter types each applies to here.
_PREFIXES = {"eq", "ne", "gt", "lt", "ge", "le", "ap", "sa", "eb"}
OPERATORS_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "pr"}),
    "token": frozenset({"eq", "ne", "co", "sw", "ew", "ss", "sb", "in", "ni", "pr"}),
    "date": frozenset(_PREFIXES | {"po", "pr"}),
    "number": frozenset({"eq", "ne", "gt", "lt", "ge", "le", "ap", "pr"}),
    "quantity": frozenset({"eq", "ne", "gt", "lt", "ge", "le", "ap", "pr"}),
    "reference": frozenset({"eq", "ne", "re", "pr"}),
    "uri": frozenset({"eq", "ne", "co", "sw", "ew", "ss", "sb", "pr"}),
    "composite": frozenset({"eq", "ne", "pr"}),
    "_id": frozenset({"eq", "ne", "pr"}),
    "_lastUpdated": frozenset(_PREFIXES | {"po", "pr"}),
    "_text": frozenset({"eq", "co", "pr"}),
    "_content": frozenset({"eq", "co", "pr"}),
    "_list": frozenset({"eq"}),
}
ALL_SPEC_OPERATORS = frozenset(
    {"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "ap", "sa", "eb", "pr", "po", "ss", "sb", "in", "ni", "re"}
)


class FilterSyntaxError(ValueError):
    """The expression does not follow the _filter grammar."""


# -- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """`path op value`; `criterion` is set by `resolve` (None straight from the parser)."""

    path: str
    op: str
    value: str
    criterion: Criterion | None = None


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Comparison | And | Or | Not


@dataclass(frozen=True)
class Filter:
    """The criterion of a `_filter` clause for one resource type."""

    root: Node


# -- reading the expression ----------------------------------------------------------------

_PUNCTUATION = "()[]"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "string" "word"
    text: str
    at: int


def _lex(text: str) -> list[_Token]:
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCTUATION:
            out.append(_Token(ch, ch, i))
            i += 1
        elif ch == '"':
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise FilterSyntaxError(f"the string starting at position {start + 1} is not closed")
                ch = text[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    if nxt == "u" and i + 5 < n:
                        try:
                            chars.append(chr(int(text[i + 2 : i + 6], 16)))
                        except ValueError:
                            raise FilterSyntaxError(f"bad escape at position {i + 1}") from None
                        i += 6
                        continue
                    chars.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                    continue
                chars.append(ch)
                i += 1
            out.append(_Token("string", "".join(chars), start))
        else:
            # A token ends at a space, ")" or an unmatched "]": "mm[Hg]" stays one value.
            start, depth = i, 0
            while i < n and not text[i].isspace() and text[i] != ")" and (text[i] != "]" or depth):
                depth += {"[": 1, "]": -1}.get(text[i], 0)
                i += 1
            out.append(_Token("word", text[start:i], start))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.i = 0
        self.depth = 0  # open parentheses and `not`s: bounded, or deep input would exhaust the stack
        self.comparisons = 0  # each becomes SQL: bounded like the clauses of a search

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise FilterSyntaxError("the expression ends too early")
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.i += 1
            return True
        return False

    def expression(self) -> Node:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > settings.FHIR_SEARCH_MAX_FILTER_DEPTH:
            raise TooCostly(f"_filter nests parentheses and 'not' deeper than this server's limit of "
                            f"{settings.FHIR_SEARCH_MAX_FILTER_DEPTH} (FHIR_SEARCH_MAX_FILTER_DEPTH)")

    def unary(self) -> Node:
        if self.keyword("not"):
            self.nest()
            inner_not = Not(self.unary())
            self.depth -= 1
            return inner_not
        token = self.peek()
        if token is not None and token.kind == "(":
            self.i += 1
            self.nest()
            inner = self.expression()
            self.depth -= 1
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise FilterSyntaxError(f"the '(' at position {token.at + 1} is not closed")
            self.i += 1
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > settings.FHIR_SEARCH_MAX_CLAUSES:
            raise TooCostly(f"_filter has more comparisons than this server's limit of "
                            f"{settings.FHIR_SEARCH_MAX_CLAUSES} (FHIR_SEARCH_MAX_CLAUSES)")
        path = self.take()
        if path.kind != "word":
            raise FilterSyntaxError(f"a parameter name was expected at position {path.at + 1}, not {path.text!r}")
        if "[" in path.text:
            name = path.text.split("[", 1)[0]
            raise Unsupported(f"_filter: filters on sub-elements ({name}[...]) are not supported by this server")
        if ":" in path.text:
            raise FilterSyntaxError(f"{path.text!r}: modifiers are not part of _filter names; use an operator")
        op = self.take()
        name = op.text.lower()
        if op.kind != "word" or name not in ALL_SPEC_OPERATORS:
            raise FilterSyntaxError(f"{op.text!r} at position {op.at + 1} is not a _filter operator")
        value = self.take()
        if value.kind not in ("word", "string"):
            raise FilterSyntaxError(f"a value was expected at position {value.at + 1}, not {value.text!r}")
        return Comparison(path.text, name, value.text)


def parse(text: str) -> Node:
    """The tree of a _filter expression. Raises FilterSyntaxError (or Unsupported)."""
    parser = _Parser(text)
    if not parser.tokens:
        raise FilterSyntaxError("the expression is empty")
    root = parser.expression()
    rest = parser.peek()
    if rest is not None:
        raise FilterSyntaxError(f"unexpected {rest.text!r} at position {rest.at + 1}")
    return root


# -- meaning per resource type -------------------------------------------------------------


def _kinds(criterion: Criterion) -> list[str]:
    """The type name(s) the operator of a test applies to (per chain target)."""
    if isinstance(criterion, Plain):
        return [criterion.ptype.name]  # the type ("token"), or the special parameter ("_id")
    if isinstance(criterion, Chain):
        return [k for _, inner in criterion.targets for k in _kinds(inner)]
    raise Unsupported("_filter: _has is not supported inside _filter")


def resolve(node: Node, resource_type: str | None) -> Filter:
    """Look the names up for one resource type (None: system search, common parameters only).

    Raises UnknownParameter for an unknown name, Unsupported for an operator that does not
    apply to the parameter's type.
    """
    return Filter(_resolve(node, resource_type))


def _resolve(node: Node, resource_type: str | None) -> Node:
    if isinstance(node, And):
        return And(tuple(_resolve(p, resource_type) for p in node.parts))
    if isinstance(node, Or):
        return Or(tuple(_resolve(p, resource_type) for p in node.parts))
    if isinstance(node, Not):
        return Not(_resolve(node.part, resource_type))
    criterion = resolve_name(resource_type, node.path)
    if isinstance(criterion, Has):
        raise Unsupported("_filter: _has is not supported inside _filter")
    for kind in _kinds(criterion):
        allowed = OPERATORS_BY_TYPE.get(kind, frozenset())
        if node.op not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise Unsupported(
                f"_filter: the operator '{node.op}' does not apply to {node.path} "
                f"(a {kind} parameter; it takes {takes})"
            )
    return Comparison(node.path, node.op, node.value, criterion)
