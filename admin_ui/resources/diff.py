"""What changed between two versions of a resource: added, removed and changed elements.

Elements are compared as JSON, objects by key and arrays by position, and each change names
its FHIRPath-like path (`name[0].given[1]`), so a reader sees what moved without reading
two whole documents.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ADDED, REMOVED, CHANGED = "added", "removed", "changed"


@dataclass(frozen=True)
class Change:
    path: str
    kind: str
    old: str = ""
    new: str = ""


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1) if isinstance(value, (dict, list)) else json.dumps(
        value, ensure_ascii=False)


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else key
            if key not in new:
                changes.append(Change(sub, REMOVED, old=_shown(old[key])))
            elif key not in old:
                changes.append(Change(sub, ADDED, new=_shown(new[key])))
            else:
                changes.extend(diff(old[key], new[key], sub))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                changes.append(Change(sub, REMOVED, old=_shown(old[i])))
            elif i >= len(old):
                changes.append(Change(sub, ADDED, new=_shown(new[i])))
            else:
                changes.extend(diff(old[i], new[i], sub))
        return changes
    if old != new or type(old) is not type(new):
        return [Change(path or "(resource)", CHANGED, _shown(old), _shown(new))]
    return []
