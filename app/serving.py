"""Several uvicorn workers, each accepting connections on a listening socket of its own.

uvicorn's own workers share one listening socket, and the worker that wakes first accepts every
connection that is waiting. When a room's phones connect at once, one worker can get them all
while the other idles: `make bench` saw a worker carry 99% of the CPU for a whole round. Here
each worker binds the address itself with SO_REUSEPORT, and the kernel spreads new connections
over the workers' sockets. The parent only starts the workers, restarts one that dies, and
passes on the signal to stop.

Used by `onsite-ballot serve` and by the benchmark's ceiling, so that both are served alike:

    python -m app.serving bench.ceiling_app:create_ceiling --workers 2 --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("uvicorn.error")

# A worker that dies this soon after starting is not restarted at once: it would only die again.
QUICK_DEATH_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 1.0
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Limits:
    """What one client may hold of a worker (uvicorn bounds none of these by itself)."""

    # The request head (request line and headers) must arrive within this long of the connection
    # being made, or of its first byte on a kept-alive connection: a phone sends it in one packet;
    # a socket that never sends, or trickles, would otherwise be held for ever.
    head_seconds: float = 20.0
    # Connections a worker takes before it answers 503 (with a plain message, then closes) rather
    # than running out of file descriptors and leaving new phones unanswered.
    max_connections: int = 2000
    # A request head larger than this is refused (400) and its connection closed.
    max_head_bytes: int = 32 * 1024
    # Requests queued on one connection behind the one being answered. Browsers do not pipeline; a
    # client that sends more without reading the answers is cut off.
    max_pipelined: int = 16
    # A client that reads none of an answer for this long is cut off: its answer sits in memory.
    stalled_write_seconds: float = 30.0


def serve(
    app: str, *, host: str, port: int, workers: int, limits: Limits | None = None, **options: Any
) -> int:
    """Serve the app factory `module:function`; returns the exit status for the command line."""
    limits = limits or Limits()
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, factory=True, workers=workers, http=guarded_http(limits), **options)
        return 0
    return _Supervisor(app, host, port, workers, {**options, "limits": limits}).run()


class _Supervisor:
    def __init__(self, app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
        self.args = (app, host, port, options)
        self.workers = workers
        self.context = multiprocessing.get_context("spawn")
        self.stopping = False

    def start(self) -> tuple[BaseProcess, float]:
        process = self.context.Process(target=_worker, args=self.args, name="onsite-ballot-worker")
        process.start()
        return process, time.monotonic()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)
        processes = [self.start() for _ in range(self.workers)]
        status = 0
        while not self.stopping:
            for index, (process, started) in enumerate(processes):
                if process.is_alive() or self.stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a worker could not start (see above); stopping")
                    self.stopping, status = True, STARTUP_FAILURE
                    break
                log.warning("worker %s exited with status %s; starting another", process.pid, process.exitcode)
                if time.monotonic() - started < QUICK_DEATH_SECONDS:
                    time.sleep(RESTART_PAUSE_SECONDS)
                processes[index] = self.start()
            time.sleep(0.2)
        for process, _ in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # uvicorn's graceful shutdown
        deadline = time.monotonic() + STOP_SECONDS
        for process, _ in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        return status

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True


def _worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    options = dict(options)
    http = guarded_http(options.pop("limits"))
    config = uvicorn.Config(app, host=host, port=port, factory=True, http=http, **options)
    uvicorn.Server(config).run(sockets=[sock])


# ---- the limits, in uvicorn's HTTP protocol -------------------------------------------------------

BUSY = {
    "zh": "服务器连接数已满，请几秒后重试",
    "en": "This server is taking as many connections as it can; try again in a few seconds",
}
BUSY_RETRY_SECONDS = 5
TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
               b"content-length: 0\r\nconnection: close\r\n\r\n")


class _HeadTooLarge(Exception):
    pass


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer past the connection cap: a plain 503, and the connection closed."""
    accept = dict(scope["headers"]).get(b"accept-language", b"").strip().lower()
    lang = "en" if accept.startswith(b"en") else "zh"
    body = json.dumps({"code": "server_busy", "detail": BUSY[lang], "problems": []},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", str(BUSY_RETRY_SECONDS).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def guarded_http(limits: Limits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the bounds of ``limits``."""

    class GuardedHttp(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._real_app = self.app
            self._over_cap = False
            self._head_timer: asyncio.TimerHandle | None = None
            self._write_timer: asyncio.TimerHandle | None = None
            self._head_bytes = 0
            self._in_head = False
            self._greedy = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # Decided on arrival: connections made before the cap was reached keep being served.
            self._over_cap = len(self.connections) > limits.max_connections
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._head_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._greedy and not self.transport.is_closing():
                self.transport.abort()

        def _start_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.head_seconds, self._head_late)

        def _head_late(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self._in_head:
                self.transport.write(TIMEOUT_408)
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes, self._in_head = 0, True
            self._start_head_timer()

        def _count(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > limits.max_head_bytes:
                raise _HeadTooLarge  # the parser stops; uvicorn answers 400 and closes

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            if self._greedy:
                return
            if len(self.pipeline) >= limits.max_pipelined:
                self._greedy = True  # cut off once this read is parsed (data_received)
                return
            self.app = _busy if self._over_cap else self._real_app
            try:
                super().on_headers_complete()
            finally:
                self.app = self._real_app

        def on_body(self, body: bytes) -> None:
            if not self._greedy:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._greedy:
                super().on_message_complete()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(limits.stalled_write_seconds, self.transport.abort)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None

    return GuardedHttp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.serving", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("app", help="an app factory, module:function")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    return serve(args.app, host=args.host, port=args.port, workers=args.workers, access_log=not args.no_access_log)


if __name__ == "__main__":
    raise SystemExit(main())
