"""Billing's modules import one way (issue 12 §3): no module cycle, counting imports inside
functions too, and no import deferred into a function to dodge one. The layer contracts
themselves are import-linter's (`make lint`, pyproject.toml)."""

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def _billing_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("billing", include_external_packages=False, cache_dir=None)
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_billing_module_imports_itself_back():
    assert _cycles(_billing_graph()) == []


def _deferred_billing_imports() -> list[str]:
    """``import billing…`` inside a function body, except an AppConfig's ``ready()`` (Django's
    place for start-up wiring) and the known edge."""
    found = []
    for path in sorted((ROOT / "billing").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "ready":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.module:
                    targets = [node.module]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                for target in targets:
                    if target.startswith("billing"):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    return found


def test_no_billing_import_is_deferred_into_a_function():
    assert _deferred_billing_imports() == []
