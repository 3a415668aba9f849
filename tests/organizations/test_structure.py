"""Every write of the organizations app is a service (issue 12 §2): its views, serializers,
admin, tasks, commands and authentication classes validate, call ``organizations.services``
and render, and none of them writes a row or opens a transaction itself."""

import re
from pathlib import Path

from tests.helpers import modules_under

ROOT = Path(__file__).resolve().parent.parent.parent
ENTRY_POINTS = ("api", "admin.py", "tasks.py", "management", "auth", "urls.py")
# A model write, a row lock or a transaction of its own.
WRITE = re.compile(
    r"\.(save|delete|update|create|get_or_create|update_or_create|bulk_create|bulk_update)\("
    r"|select_for_update|transaction\.atomic"
)


def _entry_point_modules() -> list[Path]:
    return modules_under(ROOT / "organizations", ENTRY_POINTS)


def test_the_scan_finds_the_entry_points_and_recognises_a_write():
    names = {path.relative_to(ROOT).as_posix() for path in _entry_point_modules()}
    assert {"organizations/admin.py", "organizations/api/members.py", "organizations/urls.py"} <= names
    assert WRITE.search('obj.save(update_fields=["org_name"])')
    assert WRITE.search("with transaction.atomic():")
    assert not WRITE.search("def get_or_create_user(self, access_token):")


def test_no_entry_point_of_organizations_writes_a_model_itself():
    writes = [
        f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}"
        for path in _entry_point_modules()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if WRITE.search(line)
    ]
    assert writes == []
