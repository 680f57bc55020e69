"""A slow or oversize client is refused and does not starve the others (real server, real sockets)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.service import free_port, running, service, service_env

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = service_env(tmp_path / "data", free_port())
    env["ONSITE_BALLOT_MAX_BODY_SECONDS"] = "1"
    with running(service(env, 1, tmp_path / "server.log")) as started:
        yield started.base


def raw(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(data)
    return sock


def answer(sock: socket.socket) -> bytes:
    """One HTTP answer: its head, and as much body as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_trickling_body_gets_408_while_others_are_served(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    slow = raw(port, b"POST /api/v1/ballots HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"token\": ")
    # While the slow client holds its connection, others are answered as usual.
    for _ in range(5):
        assert httpx.get(f"{server}/healthz", timeout=5).json() == {"status": "ok"}
    with slow:
        reply = answer(slow)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert "请求内容在 1 秒内未传完".encode() in reply


def test_an_oversize_body_is_refused_before_it_is_read(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    big = raw(port, b"POST /api/v1/ballots HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 10000000\r\n\r\n")
    with big:
        reply = answer(big)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert "请求内容过大（上限 65536 字节）".encode() in reply


def test_a_chunked_body_over_the_limit_is_refused(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    chunk = b"x" * 40_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    with raw(port, b"POST /api/v1/ballots HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + body) as sock:
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 413 ")
