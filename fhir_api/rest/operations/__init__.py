"""Extended operations: `$name` at system, type or instance level (https://hl7.org/fhir/R4/operations.html).

An operation is a function registered with `@operation(...)`; the route table sends every
`$name` URL to `fhir_api.rest.views.operation.OperationViewSet`, which looks it up here. Modules
that define operations are listed in OPERATION_MODULES and imported once, on first use.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

from fhir_api.store.errors import BadRequest, NotFound

# Every module that registers operations (imported lazily, so start-up stays light).
OPERATION_MODULES: list[str] = [
    "fhir_api.rest.operations.everything",
    "fhir_api.rest.operations.meta",
    "fhir_api.rest.operations.validate",
    "fhir_api.rest.operations.reindex",
    "fhir_api.rest.operations.lastn",
    "fhir_api.rest.operations.terminology",
    "fhir_api.rest.operations.export",
]


@dataclass(frozen=True)
class Invocation:
    """What an operation receives: where it was called and its input parameters."""

    request: HttpRequest
    level: str  # "system", "type" or "instance"
    resource_type: str | None
    logical_id: str | None
    parameters: dict[str, Any]  # a Parameters resource (GET query params are converted into one)
    resource: dict[str, Any] | None = None  # the body when it was a resource other than Parameters

    def values(self, name: str) -> list[Any]:
        """All values of a top-level parameter: valueX, resource or part."""
        out = []
        for p in self.parameters.get("parameter", []):
            if p.get("name") != name:
                continue
            if "resource" in p:
                out.append(p["resource"])
            elif "part" in p:
                out.append(p["part"])
            else:
                out.extend(v for k, v in p.items() if k.startswith("value"))
        return out

    def value(self, name: str, default: Any = None) -> Any:
        found = self.values(name)
        return found[0] if found else default

    @property
    def operation(self) -> str:
        """The operation's name (without "$"), from the URL it was called at."""
        return self.request.path.rsplit("$", 1)[-1]

    def one(self, name: str) -> Any:
        """The value of a parameter that may be given once (None when absent; 400 when repeated)."""
        found = self.values(name)
        if len(found) > 1:
            raise BadRequest(f"${self.operation} takes at most one {name}")
        return found[0] if found else None


Handler = Callable[[Invocation], HttpResponse]


@dataclass(frozen=True)
class Operation:
    name: str  # without "$"
    levels: frozenset[str]
    types: frozenset[str] | None  # None: every resource type
    handler: Handler
    affects_state: bool  # POST only when true (operations.html#executing)
    definition: str | None  # canonical URL of its OperationDefinition
    # The SMART permission (r, u, ...) the token needs on the operation's target type (and,
    # at instance level, on that resource); None: any valid token (e.g. $validate, which
    # reads nothing). `everything`: it acts on all data, so only a token whose scopes reach
    # every resource unrestricted may call it (e.g. $reindex).
    permission: str | None = None
    everything: bool = False
    # It runs as a job: the call answers 202 with the job's status URL in Content-Location
    # (https://hl7.org/fhir/R4/async.html), which the OpenAPI document says.
    asynchronous: bool = False


_REGISTRY: dict[str, list[Operation]] = {}


def operation(
    name: str,
    *,
    levels: tuple[str, ...],
    types: tuple[str, ...] | None = None,
    affects_state: bool = False,
    definition: str | None = None,
    permission: str | None = None,
    everything: bool = False,
    asynchronous: bool = False,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        op = Operation(name, frozenset(levels), frozenset(types) if types else None, handler, affects_state,
                       definition, permission, everything, asynchronous)
        _REGISTRY.setdefault(name, []).append(op)
        return handler

    return register


_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in OPERATION_MODULES:
            importlib.import_module(module)
        _loaded = True


def find(name: str, level: str, resource_type: str | None) -> Operation:
    _load()
    for op in _REGISTRY.get(name, ()):
        if level in op.levels and (op.types is None or resource_type in op.types):
            return op
    where = {"system": "the system level", "type": f"{resource_type}", "instance": f"{resource_type} instances"}[level]
    raise NotFound(f"Operation ${name} is not supported on {where}", code="not-supported")


def all_operations() -> list[Operation]:
    _load()
    return [op for ops in _REGISTRY.values() for op in ops]


def parameters_from_query(query: Any) -> dict[str, Any]:
    """GET $op?a=1&b=2: simple parameters become a Parameters resource (valueString)."""
    params = [
        {"name": key, "valueString": value}
        for key in query
        if key not in ("_format", "_pretty")
        for value in query.getlist(key)
    ]
    return {"resourceType": "Parameters", "parameter": params}


def check_parameters(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("An operation takes a Parameters resource as its body")
    return body
