"""Idle, slow and greedy clients cannot exhaust the server (issue #13, point 2).

Before: connections that sent nothing and slow-loris heads were never closed; with the open-file
limit at 1,024, 1,100 such sockets made every probe ballot fail; 300 clients pipelining large GETs
without reading grew the worker by 180 MB and held ballots up for 15 s. Now the server closes a
connection whose request head has not arrived in time, raises its soft open-file limit to the hard
one at start and says so, answers a clear 503 past a number of connections per worker, and closes
a connection that queues more requests than it reads answers to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.service import Api, Server, create_api_key, free_port, running, service, service_env
from tests.conftest import ALL_A

pytestmark = pytest.mark.slow

HEAD_SECONDS = 2


def start(tmp_path: Path, argv_prefix: tuple[str, ...] = (), **settings: str) -> Server:
    env = service_env(tmp_path / "data", free_port())
    env.update({f"ONSITE_BALLOT_{name.upper()}": value for name, value in settings.items()})
    server = service(env, 1, tmp_path / "server.log")
    server.argv = [*argv_prefix, *server.argv]
    server.key = create_api_key(env, "connections-test")  # type: ignore[attr-defined]
    return server


@pytest.fixture
def quick_heads(tmp_path: Path) -> Iterator[Server]:
    with running(start(tmp_path, request_head_seconds=str(HEAD_SECONDS))) as server:
        yield server


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within the time (an answer before the close is fine)."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_silent_and_trickling_connections_are_closed_after_the_head_timeout(quick_heads: Server) -> None:
    silent = [socket.create_connection(("127.0.0.1", quick_heads.port)) for _ in range(50)]
    trickling = [socket.create_connection(("127.0.0.1", quick_heads.port)) for _ in range(20)]
    started = time.monotonic()
    for step in range(8):  # a head that never ends: one header line every half second
        for sock in trickling:
            with contextlib.suppress(OSError):  # closed by the server already: what is wanted
                sock.sendall(b"GET /healthz HTTP/1.1\r\n" if step == 0 else b"X-Slow: 1\r\n")
        time.sleep(0.5)
        if time.monotonic() - started > HEAD_SECONDS + 1.5:
            break
    try:
        assert [closed_by_server(sock, HEAD_SECONDS + 2) for sock in silent + trickling] == [True] * 70
    finally:
        for sock in silent + trickling:
            sock.close()
    # A phone that sends its request in time is served as before.
    assert httpx.get(f"{quick_heads.base}/healthz", timeout=5).status_code == 200


def test_a_thousand_idle_sockets_under_a_soft_limit_of_1024_do_not_stop_the_ballots(tmp_path: Path) -> None:
    server = start(tmp_path, ("prlimit", "--nofile=1024:20000", "--"))
    with running(server):
        api = Api(server.base, server.key)  # type: ignore[attr-defined]
        api.unit("FD1")
        meeting_id = api.open_meeting("FD1", "空闲连接", 40)
        codes = api.mint(meeting_id, 40)
        api.http.close()
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(1100)]
        try:
            statuses = []
            for code in codes:  # each from a phone of its own: a new connection
                try:
                    r = httpx.post(f"{server.base}/api/v1/ballots", json={"token": code, "answers": ALL_A}, timeout=5)
                    statuses.append(r.status_code)
                except httpx.HTTPError as error:
                    statuses.append(type(error).__name__)
        finally:
            for sock in idle:
                sock.close()
    assert statuses == [201] * 40
    assert "打开文件数上限 open-file limit: 1024 → 20000" in (tmp_path / "server.log").read_text("utf-8")


def test_past_the_connection_cap_a_worker_answers_a_clear_503(tmp_path: Path) -> None:
    with running(start(tmp_path, max_connections="50")) as server:

        async def sixty() -> list[tuple[int, bytes]]:
            from bench.client import Connection, get

            conns = [await Connection.open("127.0.0.1", server.port) for _ in range(60)]
            try:
                return [await conn.request(get("/healthz", headers={"Accept-Language": "en"})) for conn in conns]
            finally:
                for conn in conns:
                    conn.close()

        answers = asyncio.run(sixty())
    assert [status for status, _ in answers] == [200] * 50 + [503] * 10
    assert {body for _, body in answers[50:]} == {
        b'{"code":"server_busy","detail":"This server is taking as many connections as it can; try again in a'
        b' few seconds","problems":[]}'
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_clients_that_pipeline_without_reading_are_cut_off(tmp_path: Path) -> None:
    clients, requests = 150, 400
    server = start(tmp_path)
    with running(server):
        api = Api(server.base, server.key)  # type: ignore[attr-defined]
        api.unit("PIPE1")
        meeting_id = api.open_meeting("PIPE1", "流水线", 40)
        codes = api.mint(meeting_id, 40)
        big = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * requests
        before = rss_kib(server.proc.pid)  # type: ignore[union-attr]
        greedy = []
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
            sock.sendall(big)
            greedy.append(sock)
        latencies = []
        for code in codes:
            started = time.monotonic()
            assert api.http.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
            latencies.append(time.monotonic() - started)
        grown = rss_kib(server.proc.pid) - before  # type: ignore[union-attr]
        for sock in greedy:
            sock.close()
        api.http.close()
    assert max(latencies) < 1.0, latencies
    assert grown < 40 * 1024, f"the worker grew by {grown // 1024} MB"
