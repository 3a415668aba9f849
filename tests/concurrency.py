"""Run code on many threads at once, each on its own database connection."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_concurrently(fn: Callable[[int], Any], count: int, timeout: float = 120) -> list[Any]:
    """Call ``fn(i)`` for i in range(count) on ``count`` threads released together.

    Returns each call's result, or the exception it raised, in order. Every thread closes its
    own connection so the test database can be dropped afterwards.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def work(index: int) -> None:
        try:
            barrier.wait()
            results[index] = fn(index)
        except BaseException as exc:  # collected and asserted on by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("a worker thread did not finish: possible deadlock")
    return results
