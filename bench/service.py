"""Start and stop the service and the ceiling as a user would, and prepare meetings through the API."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
# Generous: the first start migrates and seeds; two PostgreSQL workers import the app twice.
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
MINT_CHUNK = 1000  # app.store.MAX_MINT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(data_dir: Path, port: int, database_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONSITE_BALLOT_")}
    env.update(
        ONSITE_BALLOT_DATA_DIR=str(data_dir),
        ONSITE_BALLOT_HOST="127.0.0.1",
        ONSITE_BALLOT_PORT=str(port),
        ONSITE_BALLOT_BASE_URL=f"http://127.0.0.1:{port}",
        ONSITE_BALLOT_DATABASE_URL=database_url,
    )
    return env


def create_api_key(env: dict[str, str], name: str) -> str:
    out = subprocess.run(
        [str(BIN / "onsite-ballot"), "create-api-key", name],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def recreate_pg_database(name: str) -> str:
    """A dedicated database, dropped and created afresh; never the test suite's `test`."""
    assert name != "test", "the test suite drops and recreates `test`"
    subprocess.run(["dropdb", *PG_ADMIN, "--if-exists", "--force", name], check=True, capture_output=True)
    subprocess.run(["createdb", *PG_ADMIN, name], check=True, capture_output=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def pg_available() -> bool:
    if shutil.which("pg_isready") is None or shutil.which("createdb") is None:
        return False
    return subprocess.run(["pg_isready", "-q", *PG_ADMIN[:4]], check=False).returncode == 0


class Server:
    """A server process group started by us; stopped by its own id, never by name."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.argv = argv
        self.env = env
        self.port = port
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.argv[0]} did not answer /healthz in {START_TIMEOUT_S} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL to the whole group we started: the supervisor and its workers die at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def pids(self) -> list[int]:
        """Our process and its descendants (uvicorn's workers), read from /proc."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU of our process tree so far (ticks of live processes only)."""
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[int, float]:
        """User + system CPU so far of each process of our tree, by pid."""
        seconds = {}
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        return seconds


@contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def service(env: dict[str, str], workers: int, log: Path) -> Server:
    argv = [str(BIN / "onsite-ballot"), "serve", "--workers", str(workers)]
    return Server(argv, env, int(env["ONSITE_BALLOT_PORT"]), log)


def ceiling(workers: int, port: int, log: Path) -> Server:
    argv = [
        str(BIN / "python"), "-m", "app.serving", "bench.ceiling_app:create_ceiling",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONSITE_BALLOT_")}
    return Server(argv, env, port, log)


class Api:
    """The organizer's side, through the JSON API with an API key."""

    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def _ok(self, response: httpx.Response, status: int) -> Any:
        if response.status_code != status:
            request = response.request
            raise RuntimeError(f"{request.method} {request.url}: {response.status_code} {response.text}")
        return response.json()

    def unit(self, code: str) -> None:
        body = {"code": code, "name": f"压测单位 {code}", "category": "party_gov"}
        self._ok(self.http.post("/api/v1/units", json=body), 201)

    def open_meeting(self, unit_code: str, title: str, attendance: int) -> int:
        body = {"unit_code": unit_code, "year": 2026, "date": "2026-12-03", "title": title, "mode": "cards",
                "attendance": attendance}
        meeting_id = int(self._ok(self.http.post("/api/v1/meetings", json=body), 201)["id"])
        self._ok(self.http.post(f"/api/v1/meetings/{meeting_id}/open"), 200)
        return meeting_id

    def mint(self, meeting_id: int, count: int) -> list[str]:
        codes: list[str] = []
        while len(codes) < count:
            n = min(MINT_CHUNK, count - len(codes))
            answer = self._ok(self.http.post(f"/api/v1/meetings/{meeting_id}/tokens", json={"count": n}), 201)
            codes.extend(t["code"] for t in answer["tokens"])
        return codes

    def tally(self, meeting_id: int) -> dict[str, Any]:
        return self._ok(self.http.get(f"/api/v1/meetings/{meeting_id}/tally"), 200)  # type: ignore[no-any-return]

    def close(self, meeting_id: int) -> dict[str, Any]:
        return self._ok(self.http.post(f"/api/v1/meetings/{meeting_id}/close"), 200)  # type: ignore[no-any-return]

    def result(self, meeting_id: int) -> dict[str, Any]:
        return self._ok(self.http.get(f"/api/v1/meetings/{meeting_id}/result"), 200)  # type: ignore[no-any-return]
