"""No function of the shipped code runs over 70 lines (issue 12): a longer one is split into named
steps. Migrations are generated and left out; tests and benchmarks are not shipped."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("billing", "organizations", "orgbilling")
MAX_LINES = 70


def long_functions(source: str, *, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of each function or method in ``source`` longer than ``limit``, its
    decorators excluded: a long ``extend_schema`` stays beside the serializers, not here."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append((node.name, lines))
    return found


def _shipped_modules() -> list[Path]:
    modules = []
    for package in PACKAGES:
        modules += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return modules


def test_the_check_finds_a_long_function_and_passes_a_short_one():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    assert long_functions(f"def long():\n{body}\n") == [("long", MAX_LINES + 1)]
    assert long_functions(f"def short():\n{body[: body.rfind(chr(10))]}\n") == []
    nested = f"class C:\n    async def method(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n"
    assert long_functions(nested) == [("method", MAX_LINES + 1)]


def test_no_shipped_function_runs_over_70_lines():
    modules = _shipped_modules()
    assert len(modules) > 150  # the walk found the apps, not an empty folder
    too_long = {
        f"{path.relative_to(ROOT)}:{name}": lines
        for path in modules
        for name, lines in long_functions(path.read_text())
    }
    assert too_long == {}, "split these into named steps: " + ", ".join(
        f"{where} ({lines} lines)" for where, lines in sorted(too_long.items())
    )
