"""The billing API's OpenAPI documentation lives beside its serializers (issue 12 §4): a view
module applies a prebuilt schema in one line and builds none itself, so its code reads without
pages of examples around it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VIEWS = ROOT / "billing" / "api"
# What builds a schema: these calls belong in billing/api/serializers/<area>.py.
_SCHEMA_BUILDERS = {
    "extend_schema",
    "OpenApiExample",
    "OpenApiParameter",
    "OpenApiResponse",
    "example",
    "error_responses",
}


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _schema_building_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {name}(...)"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and (name := _called_name(node)) in _SCHEMA_BUILDERS
    ]


def test_billing_view_modules_apply_prebuilt_schemas_and_build_none():
    view_modules = sorted(VIEWS.glob("*.py"))
    assert len(view_modules) > 5  # the scan sees the views (not an empty folder after a move)

    found = [hit for path in view_modules for hit in _schema_building_calls(path)]

    assert found == [], "build these in billing/api/serializers/<area>.py:\n" + "\n".join(found)
