"""Race helpers: run code on many threads at once, or in the middle of another transaction,
each thread on its own database connection."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction


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


@contextmanager
def in_open_transaction(
    work: Callable[[], Any], *, release_after: float | None = None, timeout: float = 30
) -> Iterator[Any]:
    """Run ``work()`` in a transaction on another thread and connection, and keep that transaction
    open while the ``with`` block runs: the block happens in the middle of it.

    Typically ``work`` takes a row lock (``select_for_update``) and the block shows what the code
    under test does while another transaction holds it. The block starts once ``work`` has returned
    and gets its result; an exception ``work`` raised is raised here instead. The transaction is
    rolled back (nothing it wrote stays) when the block ends, or after ``release_after`` seconds if
    given (to show the code under test waiting, then going on); it never stays open past
    ``timeout`` seconds.
    """
    ready, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def hold() -> None:
        try:
            with transaction.atomic():
                outcome["result"] = work()
                ready.set()
                release.wait(timeout)
                transaction.set_rollback(True)
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc
        finally:
            ready.set()
            connection.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    timer = threading.Timer(release_after, release.set) if release_after is not None else None
    try:
        if not ready.wait(timeout):
            raise TimeoutError("the other transaction did not start")
        if "error" in outcome:
            raise outcome["error"]
        if timer is not None:
            timer.start()
        yield outcome["result"]
    finally:
        release.set()
        if timer is not None:
            timer.cancel()
        holder.join(timeout)
        if holder.is_alive():
            raise TimeoutError("the other transaction did not end: possible deadlock")
