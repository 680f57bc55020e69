"""A lean HTTP/1.1 keep-alive client on asyncio, and the statistics the benchmark prints.

A general client (httpx) spends more CPU per request than the server's ceiling app does; on a
2-core machine it would cap the ceiling and flatter the ratio. This one sends pre-built bytes
and reads a Content-Length answer, nothing more, so the server stays the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HEADER_END = b"\r\n\r\n"
# A phone gives up after this long; an answer that never comes is counted as an error, and
# the run stays bounded even when the server stalls.
REQUEST_TIMEOUT_S = 10.0
FAILURES = (OSError, asyncio.IncompleteReadError, TimeoutError)


def post_json(path: str, body: Any, *, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode("ascii") + data


def get(path: str, *, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("ascii")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(HEADER_END)
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Stats:
    """Latencies in seconds and status counts of one phase."""

    latencies: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)  # perf_counter() at each answer
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # connection errors: no HTTP status at all
    elapsed: float = 0.0

    def record(self, status: int, latency: float) -> None:
        self.latencies.append(latency)
        self.finished.append(time.perf_counter())
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def count(self, statuses: Sequence[int]) -> int:
        return sum(self.statuses.get(s, 0) for s in statuses)

    def errors(self, ok: Sequence[int]) -> int:
        return self.failures + sum(n for s, n in self.statuses.items() if s not in ok)

    def percentile(self, p: float) -> float:
        """Nearest rank: the smallest latency with at least p% of the sample at or below it."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(len(ordered) * p / 100))
        return ordered[rank - 1]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def rate_between(self, start: float, end: float) -> float:
        """Answers per second between two fractions of the run's answers: how the rate drifts."""
        times = sorted(self.finished)
        first, last = int(len(times) * start), max(int(len(times) * end) - 1, 0)
        span = times[last] - times[first]
        return (last - first) / span if span > 0 else float("nan")

    def summary(self, ok: Sequence[int]) -> str:
        return (
            f"{len(self.latencies):>6} requests in {self.elapsed:6.2f} s = {self.throughput:7.0f}/s"
            f"  p50 {self.percentile(50) * 1000:6.1f} ms  p95 {self.percentile(95) * 1000:6.1f} ms"
            f"  p99 {self.percentile(99) * 1000:6.1f} ms  errors {self.errors(ok)} (no answer {self.failures})"
            f"  statuses {dict(sorted(self.statuses.items()))}"
        )


async def closed_loop(host: str, port: int, requests: Sequence[bytes], connections: int) -> Stats:
    """Each connection sends its next request as soon as the previous one is answered."""
    stats = Stats()
    queue = iter(requests)

    async def worker() -> None:
        conn = await Connection.open(host, port)
        try:
            for raw in queue:
                started = time.perf_counter()
                try:
                    status, _ = await conn.request(raw)
                except FAILURES:
                    stats.failures += 1
                    conn.close()
                    conn = await Connection.open(host, port)
                    continue
                stats.record(status, time.perf_counter() - started)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    stats.elapsed = time.perf_counter() - started
    return stats


class Pool:
    """Idle keep-alive connections; a request that finds none opens another, as phones would."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[Connection] = []
        self.opened = 0

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else None
        if conn is None:
            conn = await Connection.open(self.host, self.port)
            self.opened += 1
        try:
            answer = await conn.request(raw)
        except BaseException:
            conn.close()
            raise
        self.idle.append(conn)
        return answer

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


async def open_loop(pool: Pool, requests: Sequence[bytes], offsets: Sequence[float], stats: Stats) -> None:
    """Send request i at offsets[i] seconds after the start, whether or not earlier ones are answered.

    Latency runs from the scheduled time, not the actual send: a client that falls behind
    must not hide the server's queueing (coordinated omission).
    """
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(raw: bytes, due: float) -> None:
        try:
            status, _ = await pool.request(raw)
        except FAILURES:
            stats.failures += 1
            return
        stats.record(status, loop.time() - due)

    tasks = []
    for raw, offset in zip(requests, offsets, strict=True):
        due = start + offset
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(raw, due)))
    await asyncio.gather(*tasks)
    stats.elapsed = loop.time() - start
