"""app.serving: several workers, each on its own listening socket, supervised.

Served here is the benchmark's ceiling app (no database), started as `make bench` starts it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import client
from bench.service import Server, ceiling, free_port, running

# Worker processes, each on its own socket.
pytestmark = pytest.mark.slow

CONNECTIONS = 40


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    with running(ceiling(2, free_port(), tmp_path / "serving.log")) as server:
        yield server


def workers(server: Server) -> list[int]:
    return sorted(pid for pid in server.pids() if b"spawn_main" in cmdline(pid))


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # the process ended between the listing and this read
        return b""


def established(pid: int, port: int) -> int:
    """How many connections to `port` the process holds open, from /proc (IPv4)."""
    return sockets(pid, port, "01")  # ESTABLISHED


def sockets(pid: int, port: int, state: str) -> int:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, inode = int(fields[1].split(":")[1], 16), fields[9]
        if local_port == port and fields[3] == state and inode in inodes:
            count += 1
    return count


def wait_until_both_listen(server: Server) -> list[int]:
    """/healthz answers as soon as one worker is up; the other may still be importing the app."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = workers(server)
        if len(pids) == 2 and all(sockets(pid, server.port, "0A") == 1 for pid in pids):  # 0A: LISTEN
            return pids
        time.sleep(0.1)
    raise AssertionError(f"two workers did not both listen: {workers(server)}")


def test_connections_opened_at_once_are_spread_over_both_workers(two_workers: Server) -> None:
    pids = wait_until_both_listen(two_workers)

    async def connect_all() -> list[int]:
        conns = [await client.Connection.open("127.0.0.1", two_workers.port) for _ in range(CONNECTIONS)]
        try:
            statuses = [(await conn.request(client.get("/healthz")))[0] for conn in conns]
            held = [established(pid, two_workers.port) for pid in pids]
            assert statuses == [200] * CONNECTIONS
            return held
        finally:
            for conn in conns:
                conn.close()

    held = asyncio.run(connect_all())
    # uvicorn's shared socket lets the first worker to wake take every waiting connection; with a
    # socket each, the kernel spreads them (all 40 on one worker: odds of 2 in 2^40).
    assert sum(held) == CONNECTIONS
    assert min(held) >= 1


def test_a_worker_that_dies_is_replaced_and_a_stop_ends_them_all(two_workers: Server) -> None:
    first, second = wait_until_both_listen(two_workers)
    os.kill(first, signal.SIGKILL)
    # One listing per look, judged whole: two listings read a moment apart can straddle a spawn.
    deadline = time.monotonic() + 20
    replaced = workers(two_workers)
    while time.monotonic() < deadline and not (len(replaced) == 2 and first not in replaced and second in replaced):
        time.sleep(0.1)
        replaced = workers(two_workers)
    assert len(replaced) == 2 and first not in replaced and second in replaced, (replaced, first, second)
    assert httpx.get(f"{two_workers.base}/healthz", timeout=5).status_code == 200
    assert two_workers.proc is not None
    os.kill(two_workers.proc.pid, signal.SIGTERM)  # the supervisor only, as a service manager would
    assert two_workers.proc.wait(30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)
