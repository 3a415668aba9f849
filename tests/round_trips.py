"""Counting round trips to PostgreSQL on one connection, from libpq's own protocol trace: each
round trip ends with the server's ``ReadyForQuery`` (a simple query, or an extended-protocol
exchange up to its ``Sync``). Used by the tests that pin the gateway's units to one round trip
each, and by ``benchmarks/gateway.py``; and the commands sent to Redis (``client_commands``)."""

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg
from psycopg import pq

if TYPE_CHECKING:
    import redis


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0
        self.messages: list[str] = []  # what the client sent (the frontend's message lines)


@contextmanager
def round_trips(connection: psycopg.Connection | psycopg.AsyncConnection) -> Iterator[RoundTrips]:
    """Count the round trips ``connection`` makes inside the block."""
    counted = RoundTrips()
    with tempfile.TemporaryFile("w+") as trace:
        connection.pgconn.trace(trace.fileno())
        connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield counted
        finally:
            connection.pgconn.untrace()
            trace.seek(0)
            for line in trace:
                fields = line.split("\t")
                if len(fields) > 2 and fields[0] == "B" and fields[2] == "ReadyForQuery":
                    counted.count += 1
                elif fields[0] == "F":
                    counted.messages.append(line.rstrip("\n"))


@contextmanager
def django_round_trips() -> Iterator[RoundTrips]:
    """``round_trips`` on Django's default connection (opened first if need be)."""
    from django.db import connection

    connection.ensure_connection()
    with round_trips(connection.connection) as counted:
        yield counted


@contextmanager
def client_commands(client: "redis.Redis") -> Iterator[list[str]]:
    """The commands clients send Redis inside the block, one per round trip (MONITOR; commands
    a script runs are left out)."""
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if command["command"] == "ECHO end-of-block":
                    return
                if command["client_type"] != "lua":
                    seen.append(command["command"].split()[0].lower())

    watcher = threading.Thread(target=watch)
    watcher.start()
    ready.wait(5)
    client.ping()  # MONITOR is on once its own connection sees this
    try:
        yield seen
    finally:
        client.echo("end-of-block")
        watcher.join(5)
        del seen[: seen.index("ping") + 1]  # our own connection's set-up, if it had none yet
