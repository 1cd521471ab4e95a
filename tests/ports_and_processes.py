"""What the multi-process tests share: a free block of loopback ports, and whether a process still runs."""

from __future__ import annotations

import contextlib
import random
import socket


def free_port_block(n: int = 4) -> int:
    """A base port P with P..P+n-1 all free on 127.0.0.1 (random, so parallel tests do not collide)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - n)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + n):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports on 127.0.0.1")


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 in a container may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
