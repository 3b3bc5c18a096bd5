"""The house's floors, checked by walking every import of the project's packages (ast).

DESIGN.md: the store (`fhir_api.store`) is the ground floor; search and access stand on it;
the REST surface (`fhir_api.rest`), the OAuth endpoints and the admin stand on those. An
arrow only points down or sideways within a floor, and no modules import each other in a
circle. Imports inside functions count too (a lazy import is still a dependency); imports
under `if TYPE_CHECKING:` do not (they never run).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fhirproject", "fhir_api", "fhir_search", "smart_auth", "admin_ui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(name: str, path: Path) -> set[str]:
    """The project modules that module `name` imports: `from pkg import mod` names pkg.mod."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
            for child in node.body for n in ast.walk(child)}
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in MODULES else base)
    return {t for t in targets if t.split(".")[0] in PACKAGES and t in MODULES}


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(source_prefix: str, allowed) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in GRAPH.items() if _under(source, source_prefix)
        for target in targets if not allowed(target)
    )


def test_the_import_walk_sees_the_project():
    assert "fhir_api.store.repository" in GRAPH
    assert "fhir_api.store.models" in GRAPH["fhir_api.store.repository"]
    assert "fhir_search.service" in GRAPH["fhir_api.rest.views.search"]


def test_the_store_imports_nothing_above_it():
    assert _violations("fhir_api.store", lambda t: _under(t, "fhir_api.store") or _under(t, "fhirproject.env")) == []


def test_search_stands_on_the_store_and_the_access_module_only():
    def allowed(target: str) -> bool:
        return any(_under(target, p) for p in ("fhir_search", "fhir_api.store", "smart_auth.access"))

    assert _violations("fhir_search", allowed) == []


def test_smart_auth_never_imports_the_rest_floor_or_the_admin():
    def allowed(target: str) -> bool:
        return not any(_under(target, p) for p in ("fhir_api.rest", "admin_ui"))

    assert _violations("smart_auth", allowed) == []


def test_the_access_module_stands_on_the_store_and_its_own_floor_only():
    def allowed(target: str) -> bool:
        return any(_under(target, p) for p in (
            "smart_auth.access", "smart_auth.scopes", "smart_auth.models", "smart_auth.token_cache",
            "fhir_api.store"))

    assert _violations("smart_auth.access", allowed) == []


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in GRAPH.get(node, ()):
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_modules_import_each_other_in_a_circle():
    assert _cycles() == []


@pytest.mark.parametrize("lower,upper", [("fhir_api.store", "fhir_api.rest"), ("fhir_search", "fhir_api.rest")])
def test_a_lower_floor_that_imported_an_upper_one_would_be_caught(lower, upper):
    """The rule itself can fail: add a fake arrow upwards and the check sees it."""
    source = next(m for m in GRAPH if _under(m, lower))
    GRAPH[source].add(next(m for m in GRAPH if _under(m, upper)))
    try:
        prefixes = ("fhir_api.store", "fhirproject.env") if lower == "fhir_api.store" else (
            "fhir_search", "fhir_api.store", "smart_auth.access")
        assert _violations(lower, lambda t: any(_under(t, p) for p in prefixes)) != []
    finally:
        GRAPH[source] = _imported(source, MODULES[source])
