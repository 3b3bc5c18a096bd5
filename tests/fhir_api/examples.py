"""The 2459 R4 specification examples shipped in tests/fixtures (HL7, CC0)."""
from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parent.parent / "fixtures" / "examples-json.tar.gz"


@cache
def _members() -> tuple[tuple[str, bytes], ...]:
    with tarfile.open(ARCHIVE) as tar:
        return tuple(
            (m.name.rsplit("/", 1)[-1], tar.extractfile(m).read())  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".json")
        )


def examples() -> Iterator[tuple[str, bytes]]:
    """(file name, raw JSON bytes) of every example."""
    yield from _members()


def exact(raw: bytes | str) -> object:
    """Parse JSON keeping every number's literal text, to compare decimals exactly."""
    return json.loads(raw, parse_float=str)
