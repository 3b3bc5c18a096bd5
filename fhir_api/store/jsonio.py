"""JSON in and out, fast (orjson) and exact about FHIR decimals.

FHIR decimals keep their precision ("1.50" is not "1.5": https://hl7.org/fhir/R4/datatypes.html#decimal).
orjson parses floats as binary doubles, so a body whose decimals would not survive that
round trip is parsed again with each decimal kept as `Decimal`, a float that remembers its
literal text and is written back verbatim.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from fhir_api.store.errors import BadRequest


class Decimal(float):
    """A float that serialises as the exact literal it was parsed from."""

    __slots__ = ("literal",)

    def __new__(cls, literal: str) -> Decimal:
        value = float.__new__(cls, literal)
        value.literal = literal
        return value


# A number whose text a double would not reproduce: trailing zeros after the point, an
# exponent, or more significant digits than a double keeps. A JSON number follows ":" "," or
# "[" and is followed by "," "}" "]" or space, which keeps timestamps such as
# "10:00:00.120Z" from matching; a match inside a string only costs the slower exact parse.
_LOSSY_NUMBER = re.compile(
    rb"[:,\[]\s*-?(?:[0-9]+\.[0-9]*0|[0-9.]+[eE][-+]?[0-9]+|[0-9.]{17,})\s*[,}\]\s]"
)


class _OutOfRange(ValueError):
    pass


def _exact_float(literal: str) -> Decimal:
    value = Decimal(literal)
    if math.isinf(value):
        raise _OutOfRange(f"the number {literal[:40]}... is beyond the range of a decimal")
    return value


def _exact_int(literal: str) -> int | Decimal:
    # Beyond 64 bits orjson cannot write an int back: keep the literal, as for decimals
    # (and never call int() on thousands of digits, which Python refuses anyway).
    if len(literal.lstrip("-")) <= 18:
        return int(literal)
    return _exact_float(literal)


def _no_constant(name: str) -> Any:
    raise _OutOfRange(f"{name} is not a JSON number")


def loads(raw: bytes | str) -> Any:
    """Parse a JSON body; malformed JSON is a 400 with the parser's message."""
    try:
        if isinstance(raw, str):
            raw = raw.encode()
        if _LOSSY_NUMBER.search(raw):
            return json.loads(raw, parse_float=_exact_float, parse_int=_exact_int, parse_constant=_no_constant)
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, _OutOfRange) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}", code="structure") from None
    except RecursionError:
        raise BadRequest("The body is not valid JSON: nested too deeply", code="structure") from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(value.literal)
    raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


def dumps(value: Any, pretty: bool = False) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2 if pretty else 0)
