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
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("uvicorn.error")

# A worker that dies this soon after starting is not restarted at once: it would only die again.
QUICK_DEATH_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 1.0
STOP_SECONDS = 30.0


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> int:
    """Serve the app factory `module:function`; returns the exit status for the command line."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, factory=True, workers=workers, **options)
        return 0
    return _Supervisor(app, host, port, workers, options).run()


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
    config = uvicorn.Config(app, host=host, port=port, factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


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
