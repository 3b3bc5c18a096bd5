"""The FHIRPath invariants of the R4 definitions (`ElementDefinition.constraint`), compiled once.

https://hl7.org/fhir/R4/conformance-rules.html#constraints -- each constraint of severity
`error` on a type's root element (per-1 on Period, qty-3 on Quantity, ext-1 on Extension,
dom-2..dom-5 and obs-6 on resources) or on a backbone element (obs-3 on
Observation.referenceRange) is compiled with fhirpathpy the first time its node is met, and
evaluated on every value of that node the validator walks (`fhir_api.store.validation` at
FHIR_VALIDATION_LEVEL=full and in `$validate`).

Left to the structural pass, which checks them faster and says more: ele-1 (no empty
elements) and txt-1/txt-2 (the narrative; fhirpathpy has no `htmlChecks()`); que-7, which
fhirpathpy gets wrong. A constraint that
fhirpathpy cannot compile or run is skipped and logged once, never reported as a violation.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_api.store.structure import definitions_of

logger = logging.getLogger(__name__)

# Checked by the structural pass instead (see the module docstring); que-7 (`answer is Boolean`)
# because fhirpathpy does not treat an R4 boolean as a System Boolean and fails valid items.
SKIPPED = frozenset({"ele-1", "txt-1", "txt-2", "que-7"})


@dataclass(frozen=True, slots=True)
class Invariant:
    key: str
    human: str
    expression: str
    run: Callable[[Any, dict[str, Any]], list[Any]]


@cache
def _constraints() -> dict[str, list[dict[str, Any]]]:
    """Constraints of severity error, by the path of the element that declares them: a type's
    root ("Quantity", "Observation") or a backbone element ("Observation.referenceRange")."""
    out: dict[str, list[dict[str, Any]]] = {}
    for filename in ("profiles-types.json.gz", "profiles-resources.json.gz"):
        for sd in definitions_of("StructureDefinition", filename):
            if sd.get("derivation") == "constraint" or sd.get("type") != sd.get("id"):
                continue
            for el in sd["snapshot"]["element"]:
                path = el["path"]
                is_root = path == sd["type"]
                is_backbone = any(t.get("code") in ("BackboneElement", "Element") for t in el.get("type", ())) \
                    and "." in path
                if not (is_root or is_backbone):
                    continue
                found = [c for c in el.get("constraint", ()) if c.get("severity") == "error"
                         and c.get("expression") and c.get("key") not in SKIPPED]
                if found:
                    out[path] = found
    return out


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIRPath's `hasValue()` (fhirpathpy lacks it): one primitive that has a value."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


OPTIONS = {
    "userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}},
    "traceFn": lambda label, value: None,  # `trace()` in an invariant prints otherwise
}


@cache
def model() -> dict:
    from fhirpathpy.models import models

    return models["r4"]


@cache
def invariants_of(node: str) -> tuple[Invariant, ...]:
    """The compiled invariants of a type or backbone path; compiled on first use, kept for good."""
    from fhirpathpy import compile as compile_fhirpath

    out = []
    for c in _constraints().get(node, ()):
        try:
            run = compile_fhirpath(c["expression"], model(), OPTIONS)
        except Exception:  # noqa: BLE001 -- fhirpathpy raises many kinds on grammar it lacks
            logger.info("invariant %s of %s cannot be compiled by fhirpathpy; not checked", c["key"], node)
            continue
        out.append(Invariant(c["key"], c.get("human", ""), c["expression"], run))
    return tuple(out)


def violated(node: str, value: dict[str, Any], root: dict[str, Any]) -> list[Invariant]:
    """The invariants of `node` that `value` breaks (`root`: the resource, for %resource)."""
    invariants = invariants_of(node)
    if not invariants:
        return []
    from fhirpathpy.engine.nodes import ResourceNode

    focus = ResourceNode.create_node(value, node)
    context = {"resource": root, "rootResource": root}
    out = []
    for inv in invariants:
        try:
            result = inv.run(focus, context)
        except Exception:  # noqa: BLE001
            logger.info("invariant %s of %s failed to run in fhirpathpy; not checked", inv.key, node, exc_info=True)
            continue
        # A constraint holds unless it evaluates to false (an empty result is not a violation).
        if result == [False]:
            out.append(inv)
    return out
