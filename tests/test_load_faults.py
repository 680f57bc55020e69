"""Faults the crash test does not cover (issue #13): a whole room pressing submit at once, one of
two workers killed while the other serves, and SQLite's lock held past its busy timeout.

Each ends with the checks of tests.faults: every acknowledged ballot stored, none twice, spent
codes = ballots = the live count, the phones' ballots all counted within a stated time, and
`onsite-ballot verify` passing after the close.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.client import Connection, post_json
from bench.service import Api, Server, create_api_key, free_port, recreate_pg_database, running, service, service_env
from tests.conftest import PG_URL
from tests.faults import Phones, check_box, close_and_verify, when_acked

pytestmark = pytest.mark.slow

ROOM = 200


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="TEST_DATABASE_URL is not set"))])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Api, dict[str, str], str]]:
    """A served database: SQLite with one worker, or a database of its own on PostgreSQL with two."""
    url = recreate_pg_database(f"{make_url(PG_URL).database}_load") if request.param == "postgresql" else ""
    env = service_env(tmp_path / "data", free_port(), url)
    key = create_api_key(env, "load-test")
    with running(service(env, 2 if url else 1, tmp_path / "server.log")) as server:
        api = Api(server.base, key)
        yield server, api, env, url or f"sqlite:///{tmp_path / 'data' / 'onsite-ballot.db'}"
        api.http.close()


def test_a_room_of_200_presses_submit_at_once(backend: tuple[Server, Api, dict[str, str], str]) -> None:
    server, api, env, url = backend
    api.unit("ROOM1")
    meeting_id = api.open_meeting("ROOM1", "二百人同时提交", ROOM)
    codes = api.mint(meeting_id, ROOM)
    phones = Phones.for_codes(codes)

    async def press_together() -> list[int]:
        conns = [await Connection.open("127.0.0.1", server.port) for _ in codes]  # every phone connected
        try:
            return list(await asyncio.gather(*(
                conn.request(post_json("/api/v1/ballots", {"token": code, "answers": phones.answers[code]}))
                for conn, code in zip(conns, codes, strict=True))))
        finally:
            for conn in conns:
                conn.close()

    started = time.monotonic()
    answers = asyncio.run(press_together())  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert [status for status, _ in answers] == [201] * ROOM  # type: ignore[misc]
    assert elapsed < 10, f"200 ballots took {elapsed:.1f} s"
    phones.acked = dict.fromkeys(codes, 201)
    check_box(url, meeting_id, phones, env)
    close_and_verify(api, meeting_id, env, phones)


def worker_pids(server: Server) -> list[int]:
    pids = []
    for pid in server.pids():
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return sorted(pids)


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
def test_one_of_two_workers_killed_while_the_other_serves(tmp_path: Path) -> None:
    url = recreate_pg_database(f"{make_url(PG_URL).database}_load")
    env = service_env(tmp_path / "data", free_port(), url)
    key = create_api_key(env, "load-test")
    with running(service(env, 2, tmp_path / "server.log")) as server:
        api = Api(server.base, key)
        api.unit("KILL1")
        meeting_id = api.open_meeting("KILL1", "一个进程被杀", 300)
        codes = api.mint(meeting_id, 300)
        deadline = time.monotonic() + 30
        while len(worker_pids(server)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        victim, survivor = worker_pids(server)
        phones = Phones.for_codes(codes)

        async def scenario() -> float:
            started = time.monotonic()
            sending = asyncio.create_task(phones.send_all(server.port, clients=16, rate=150, deadline=started + 60))
            await when_acked(phones, 100, lambda: os.kill(victim, signal.SIGKILL))
            await sending
            return started

        started = asyncio.run(scenario())
        assert len(phones.acked) == 300
        # The phones of the killed worker send again to the other at once.
        assert phones.longest_silence(started) < 3.0
        replaced = worker_pids(server)
        assert victim not in replaced and survivor in replaced and len(replaced) == 2
        check_box(url, meeting_id, phones, env)
        close_and_verify(api, meeting_id, env, phones)
        api.http.close()


def test_sqlite_locked_past_its_busy_timeout(tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", free_port())
    key = create_api_key(env, "lock-test")
    path = tmp_path / "data" / "onsite-ballot.db"
    held_for = 12.0  # SQLITE_BUSY_TIMEOUT_MS is 10 s
    with running(service(env, 1, tmp_path / "server.log")) as server:
        api = Api(server.base, key)
        api.unit("LOCK1")
        meeting_id = api.open_meeting("LOCK1", "数据库被锁", 200)
        codes = api.mint(meeting_id, 200)
        phones = Phones.for_codes(codes)

        def hold_the_lock() -> None:
            def hold() -> None:
                other = sqlite3.connect(path, isolation_level=None)
                other.execute("BEGIN EXCLUSIVE")
                time.sleep(held_for)
                other.execute("COMMIT")
                other.close()

            threading.Thread(target=hold, daemon=True).start()

        async def scenario() -> float:
            started = time.monotonic()
            sending = asyncio.create_task(phones.send_all(server.port, clients=16, rate=100, deadline=started + 60))
            await when_acked(phones, 50, hold_the_lock)
            await sending
            return started

        started = asyncio.run(scenario())
        assert len(phones.acked) == 200
        # Refused ("not stored, send again": 503 after the 10 s wait) or unanswered within the
        # phone's own 10 s: either way kept and sent again, never lost.
        assert sum(phones.refused.values()) > 0
        assert phones.longest_silence(started) < held_for + 3
        check_box(f"sqlite:///{path}", meeting_id, phones, env)
        close_and_verify(api, meeting_id, env, phones)
        api.http.close()
