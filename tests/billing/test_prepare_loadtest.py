"""``manage.py prepare_loadtest``: the people ``make loadtest`` plays, their credits and keys."""

import json
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.management.commands.prepare_loadtest import KEY_NAME, MODEL, loadtest_layout
from billing.models import ModelPrice, OrganizationCreditPool, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from organizations.models import ApiKey, OrganizationMember
from organizations.services import authenticate_api_key
from tests.helpers import mc, snapshot_balances

pytestmark = pytest.mark.django_db


def prepare(tmp_path, *args: str) -> dict:
    keys_file = tmp_path / "keys.json"
    call_command(
        "prepare_loadtest",
        "--keys-file",
        str(keys_file),
        "--allow-non-debug",
        *args,
        stdout=StringIO(),
    )
    return json.loads(keys_file.read_text())


def test_layout_spreads_people_over_orgs_of_at_most_org_size():
    orgs = loadtest_layout(users=200, org_size=20)

    assert [o.org_id for o in orgs] == [f"loadtest-{n:02d}" for n in range(1, 11)]
    assert sum(len(o.members) for o in orgs) == 170
    assert sum(len(o.admins) for o in orgs) == 20
    assert all(o.service == f"{o.org_id}-gateway" for o in orgs)
    small = loadtest_layout(users=22, org_size=20)
    assert [1 + len(o.admins) + len(o.members) for o in small] == [11, 11]
    assert loadtest_layout(users=3, org_size=5)[0].members == ("loadtest-01-member-001",)


def test_prepare_creates_funded_people_with_scoped_keys_in_a_private_file(tmp_path):
    people = prepare(tmp_path, "--users", "12", "--org-size", "6", "--credits-per-member", "50")

    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert people["model"] == MODEL and ModelPrice.objects.filter(model=MODEL).exists()
    assert [o["org_id"] for o in people["orgs"]] == ["loadtest-01", "loadtest-02"]
    assert len(people["users"]) == 12
    for person in people["users"]:
        key = authenticate_api_key(person["key"])
        assert key is not None and key.user.username == person["user_id"]
        assert key.org_id == person["org_id"]
        assert key.scopes == (["charge"] if person["role"] == "service" else ["read", "write"])
        role = OrganizationMember.objects.get(org_id=person["org_id"], user=key.user).role
        assert role == ("member" if person["role"] == "member" else "admin")
    members = [p["user_id"] for p in people["users"] if p["role"] == "member"]
    allocations = UserCreditAllocation.objects.filter(user__username__in=members, is_active=True)
    assert sorted(a.free_credits for a in allocations) == [mc(50)] * len(members)
    pool = OrganizationCreditPool.objects.get(org_id="loadtest-01")
    assert pool.available_credits == mc(10000)  # the admins' headroom for the run
    assert find_all_drifts() == []


def test_prepare_again_revokes_the_previous_keys_and_tops_balances_back_up(tmp_path):
    first = prepare(tmp_path, "--users", "6", "--credits-per-member", "50")
    member = next(p for p in first["users"] if p["role"] == "member")
    allocation = UserCreditAllocation.objects.get(user__username=member["user_id"], is_active=True)
    UserCreditAllocation.objects.filter(pk=allocation.pk).update(used_credits=mc(30))  # spent in a run...
    OrganizationCreditPool.objects.filter(org_id=member["org_id"]).update(used_credits=mc(30))

    second = prepare(tmp_path, "--users", "6", "--credits-per-member", "50")

    assert all(authenticate_api_key(p["key"]) is None for p in first["users"])
    assert all(authenticate_api_key(p["key"]) is not None for p in second["users"])
    assert ApiKey.objects.filter(name=KEY_NAME, revoked_at__isnull=True).count() == 6
    allocation.refresh_from_db()
    assert allocation.free_credits == mc(50)
    assert OrganizationMember.objects.filter(org_id=member["org_id"]).count() == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "2"], "invalid_value"),
        (["--users", "many"], "invalid_value"),
        (["--org-size", "4"], "invalid_value"),
        (["--credits-per-member", "-5"], "invalid_amount"),
        (["--credits-per-member", "1.0001"], "invalid_amount"),
    ],
)
def test_prepare_refuses_bad_input_and_changes_nothing(tmp_path, args, message):
    before = snapshot_balances()

    with pytest.raises(CommandError, match=message):
        prepare(tmp_path, *args)

    assert snapshot_balances() == before
    assert not (tmp_path / "keys.json").exists()


def test_prepare_refuses_a_directory_as_keys_file(tmp_path):
    with pytest.raises(CommandError, match="invalid_keys_file"):
        call_command("prepare_loadtest", "--keys-file", str(tmp_path), "--allow-non-debug", stdout=StringIO())


def test_prepare_refuses_to_grant_credits_outside_debug_unless_told(tmp_path, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("prepare_loadtest", "--keys-file", str(tmp_path / "k.json"), stdout=StringIO())

    assert not OrganizationCreditPool.objects.exists()
