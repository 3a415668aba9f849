"""A free TCP port on 127.0.0.1 below Linux's ephemeral range, for throwaway servers.

A server port inside the ephemeral range (32768–60999, ``ip_local_port_range``) can be taken by
a client socket after a burst of connections, and a restarted PostgreSQL or Redis then cannot
bind it ("Address already in use"). Ports are drawn at random from 20000–32767 and kept only
if they can be bound now. Run as a script it prints one; ``free_port()`` is importable.
"""

import random
import socket

LOW, HIGH = 20000, 32767


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            low, high = (int(part) for part in ranges.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    ephemeral_low, ephemeral_high = _ephemeral_range()
    candidates = [p for p in range(LOW, HIGH + 1) if not ephemeral_low <= p <= ephemeral_high]
    random.shuffle(candidates)
    for port in candidates[:500]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("free_port: no free port below the ephemeral range")


if __name__ == "__main__":
    print(free_port())
