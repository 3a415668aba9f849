"""The seed's 100-member enterprise org page, as its admin sees it: a bounded number of queries
(the members table, the range charts, alerts, plans and auto top-up all included), and the
≤ 200 ms target checked on the CPU time the request takes in this process (the fastest of five):
CPU time, unlike wall time, barely moves when the 2-core machine is busy (about 105-110 ms at a
load average of 5, measured). PostgreSQL's own time is not in it; the wall time is printed and
recorded in docs/benchmarks.md."""

import time

import pytest
from django.core.management import call_command
from django.test import Client

from organizations.models import User

pytestmark = pytest.mark.django_db


def test_the_enterprise_page_runs_bounded_queries_within_200_ms_of_cpu(
    client: Client, django_assert_max_num_queries, capsys
) -> None:
    call_command("seed_demo", verbosity=0)
    client.force_login(User.objects.get(username="enterprise-admin"))
    client.get("/portal/orgs/enterprise-corp/")  # warm: templates compiled, caches filled

    cpu, wall = [], []
    for _ in range(5):
        started_cpu, started = time.process_time(), time.perf_counter()
        with django_assert_max_num_queries(29):  # 28 + departments and pending requests (issue 14)
            response = client.get("/portal/orgs/enterprise-corp/")
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)

    assert response.status_code == 200
    assert min(cpu) <= 0.200
    assert response.content.decode().count('class="allocate-form"') == 100  # the first page of 101
    with capsys.disabled():
        print(
            f"\nenterprise org page: cpu min {min(cpu) * 1000:.0f} ms, wall min {min(wall) * 1000:.0f} ms "
            f"/ median {sorted(wall)[2] * 1000:.0f} ms"
        )
