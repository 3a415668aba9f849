"""Every write of the billing app is a service (issue 12 §2): its views, admin, commands, tasks,
gateway and webhook endpoints validate, call a service and render; none of them writes a row,
locks one or opens a transaction itself. (``tests/organizations/test_structure.py`` holds the
same rule for organizations.)"""

import ast
from pathlib import Path

from tests.helpers import modules_under

ROOT = Path(__file__).resolve().parent.parent.parent
ENTRY_POINTS = ("api", "admin", "management", "tasks.py", "gateway", "webhooks", "urls.py")
# Writes through a model manager or queryset (``X.objects....update(...)``) ...
QUERYSET_WRITES = {
    "create",
    "get_or_create",
    "update_or_create",
    "bulk_create",
    "bulk_update",
    "update",
    "delete",
}


def _through_a_manager(node: ast.expr) -> bool:
    """Whether a call chain goes through ``.objects`` (``Model.objects.filter(...).update``)."""
    while True:
        if isinstance(node, ast.Attribute):
            if node.attr == "objects":
                return True
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return False


def _is_write(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "atomic":  # with / @transaction.atomic
        return isinstance(node.value, ast.Name) and node.value.id == "transaction"
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    name = node.func.attr
    # An instance's save() on any receiver; delete() and the rest only through a manager (a
    # cache or a dict has its own delete/update).
    return name in {"save", "select_for_update"} or (
        name in QUERYSET_WRITES and _through_a_manager(node.func.value)
    )


def writes_in(source: str) -> list[int]:
    """Line numbers of the model writes, row locks and transactions in ``source``."""
    return sorted({node.lineno for node in ast.walk(ast.parse(source)) if _is_write(node)})


def _entry_point_modules() -> list[Path]:
    return modules_under(ROOT / "billing", ENTRY_POINTS)


def test_the_scan_finds_the_entry_points_and_recognises_a_write():
    names = {path.relative_to(ROOT).as_posix() for path in _entry_point_modules()}
    assert {
        "billing/api/credits.py",
        "billing/admin/actions.py",
        "billing/tasks.py",
        "billing/gateway/views.py",
        "billing/webhooks/views.py",
        "billing/management/commands/seed_demo.py",
    } <= names
    assert writes_in("pool.save(update_fields=['total_credits'])") == [1]
    assert writes_in("Pool.objects.filter(org_id=1).update(total=0)") == [1]
    assert writes_in("Pool.objects.select_for_update().get(pk=1)") == [1]
    assert writes_in("with transaction.atomic():\n    pass") == [1]
    assert writes_in("@transaction.atomic\ndef f():\n    pass") == [1]
    assert writes_in("AuditEvent.objects.create(action='x')") == [1]
    # Not writes: a progress bar, a dict, a read.
    assert writes_in("progress.update(1)\nextra.update(headers)\nPool.objects.filter(pk=1).first()") == []


def test_no_entry_point_of_billing_writes_a_model_itself():
    writes = [
        f"{path.relative_to(ROOT).as_posix()}:{number}"
        for path in _entry_point_modules()
        for number in writes_in(path.read_text())
    ]
    assert writes == []
