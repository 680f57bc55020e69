"""Guessing codes is slowed, in memory only: wrong codes are counted per address and across all
addresses, a valid code always goes through, forwarded headers count only from configured proxies,
and workers share one budget between them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db import Database, metadata
from app.guard import GuessGuard
from app.main import create_app
from app.settings import Settings
from bench.service import free_port, recreate_pg_database, running, service, service_env
from tests.conftest import ALL_A, PG_URL, mint, open_meeting, side_database


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wrong(client: TestClient, guess: str = "K7MQ2X9PAR", **headers: str) -> int:
    return client.post("/api/v1/ballots", json={"token": guess, "answers": ALL_A}, headers=headers).status_code


@pytest.mark.parametrize(
    ("wrong_codes", "elapsed", "waits"),
    [
        (2, 0.0, [None]),  # 3 - 2 = 1 left: this one is answered "unknown"
        (3, 0.0, [2]),  # empty: 429, and a whole wrong code comes back in 2 s at 0.5/s
        (3, 1.9, [1]),  # 0.95 after 1.9 s, still under one: 0.05 short, rounded up to a second
        (3, 2.0, [None]),  # one whole code back after 2 s
        (10, 100.0, [None, None, None, 2]),  # refilled, never above the burst of 3
    ],
)
def test_bucket(wrong_codes: int, elapsed: float, waits: list[int | None]) -> None:
    clock = Clock()
    guard = GuessGuard(burst=3, refill_per_s=0.5, burst_all=100, refill_all_per_s=10, clock=clock)
    for _ in range(wrong_codes):
        guard.failed("10.0.0.1")
    clock.now = elapsed
    assert [guard.failed("10.0.0.1") for _ in waits] == waits
    assert guard.failed("10.0.0.2") is None  # another address is not affected


def test_all_addresses_together_have_a_budget_too() -> None:
    clock = Clock()
    guard = GuessGuard(burst=3, refill_per_s=0.5, burst_all=5, refill_all_per_s=1, clock=clock)
    assert [guard.failed(f"10.0.0.{i}") for i in range(7)] == [None] * 5 + [1, 1]
    clock.now = 1.0
    assert guard.failed("10.0.0.99") is None


def test_each_worker_guards_its_share_of_one_budget() -> None:
    one, three = GuessGuard(), GuessGuard.for_workers(3)
    assert (three.burst * 3, three.refill * 3, three.burst_all * 3, three.refill_all * 3) == (
        one.burst, one.refill, one.burst_all, one.refill_all)


def test_a_valid_code_goes_through_while_its_address_is_guessing(client: TestClient, auth: dict[str, str]) -> None:
    """The room's Wi-Fi is one address: one phone's wrong codes must not refuse another's ballot."""
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    client.app.state.guard = GuessGuard(burst=3, refill_per_s=0.001)  # type: ignore[attr-defined]
    assert [wrong(client) for _ in range(4)] == [404, 404, 404, 429]
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A})
    assert r.status_code == 201
    assert client.get(f"/b/{code}").status_code == 200  # the page of a counted code: "already counted"


def test_200_valid_submits_succeed_while_the_same_address_sends_4_wrong_codes_a_second(
    client: TestClient, auth: dict[str, str]
) -> None:
    meeting = open_meeting(client, auth, attendance=200)
    codes = mint(client, auth, meeting["id"], 200)
    clock = Clock()
    client.app.state.guard = GuessGuard(clock=clock)  # type: ignore[attr-defined]
    valid, guesses = [], []
    for code in codes:
        clock.now += 0.25
        guesses.append(wrong(client))
        valid.append(client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code)
    assert valid == [201] * 200
    # A burst of 30 that refills at 0.5/s, spent at 4/s: tokens before the i-th guess are 30 - 0.875 i
    # (the first refill is lost to the cap), so guesses 0..33 are answered "unknown", the rest "wait".
    assert guesses == [404] * 34 + [429] * 166
    assert client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["ballots_counted"] == 200


def test_a_guessing_phone_gets_the_wait_page_and_nothing_is_logged(
    client: TestClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    client.app.state.guard = GuessGuard(burst=2, refill_per_s=0.001)  # type: ignore[attr-defined]
    assert [client.get(f"/b/{guess}").status_code for guess in ("K7MQ2X9PAR", "K7MQ2X9PAS", "K7MQ2X9PAT")] == [
        404, 404, 429]
    page = client.get("/b/K7MQ2X9PAU")
    assert (page.status_code, page.headers["retry-after"]) == (429, "1000")
    assert "这台设备输入错误的测评码次数过多" in page.text
    assert client.get(f"/b/{code}").status_code == 200  # the real card still opens
    assert "testclient" not in caplog.text


@pytest.fixture
def behind_proxy(settings: Settings, database: Database) -> Iterator[TestClient]:
    # Starlette's test client connects from the address "testclient": here, a trusted proxy.
    with TestClient(create_app(settings.model_copy(update={"trusted_proxies": "testclient"}), database)) as client:
        yield client


def test_forwarded_for_counts_only_from_a_configured_proxy(
    client: TestClient, behind_proxy: TestClient, auth: dict[str, str], database: Database
) -> None:
    # Not configured: every rotated X-Forwarded-For is the one address that sent it.
    client.app.state.guard = GuessGuard(burst=3, refill_per_s=0.001)  # type: ignore[attr-defined]
    statuses = [wrong(client, **{"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(4)]
    assert statuses == [404, 404, 404, 429]
    # Behind the configured proxy: the address it appended is the client's (what the client itself
    # put in front, 203.0.113.7 here, counts for nothing).
    behind_proxy.app.state.guard = GuessGuard(burst=3, refill_per_s=0.001)  # type: ignore[attr-defined]
    statuses = [wrong(behind_proxy, **{"X-Forwarded-For": f"203.0.113.7, 198.51.100.{i}"}) for i in range(4)]
    assert statuses == [404, 404, 404, 404]
    assert [wrong(behind_proxy, **{"X-Forwarded-For": "198.51.100.1"}) for _ in range(3)] == [404, 404, 429]
    # Never stored: no address, forwarded or not, anywhere in the database.
    with database.reading() as conn:
        dump = " ".join(str(row) for table in metadata.sorted_tables
                        for row in conn.execute(text(f'SELECT * FROM "{table.name}"')))
    assert "198.51.100" not in dump and "203.0.113" not in dump and "testclient" not in dump


# ---- the real server: uvicorn's own forwarded-header handling, and several workers -----------------


def guesses_until_429(base: str, limit: int = 80, forwarded: bool = False) -> int:
    """Wrong codes sent, each on a new connection, before the first 429 (limit if none)."""
    for index in range(limit):
        headers = {"X-Forwarded-For": f"198.51.100.{index}"} if forwarded else {}
        with httpx.Client(timeout=10) as http:
            status = http.post(f"{base}/api/v1/ballots", json={"token": "K7MQ2X9PAR", "answers": ALL_A},
                               headers=headers).status_code
        if status == 429:
            return index
        assert status == 404
    return limit


@pytest.mark.slow
def test_a_local_client_cannot_rotate_forwarded_for_past_the_guard(tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", free_port())
    with running(service(env, 1, tmp_path / "server.log")) as server:
        # The burst of 30, and the one more that comes back every 2 s while the guesses are sent.
        assert guesses_until_429(server.base, forwarded=True) in range(30, 35)
    env = {**service_env(tmp_path / "data", free_port()), "ONSITE_BALLOT_TRUSTED_PROXIES": "127.0.0.1"}
    with running(service(env, 1, tmp_path / "server2.log")) as server:
        # From the configured proxy, each forwarded address has a bucket of its own.
        assert guesses_until_429(server.base, limit=40, forwarded=True) == 40
        log = (tmp_path / "server2.log").read_text()
    assert "198.51.100" not in log


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
def test_two_workers_share_one_budget(tmp_path: Path) -> None:
    url = recreate_pg_database(side_database("guard"))
    env = service_env(tmp_path / "data", free_port(), url)
    with running(service(env, 2, tmp_path / "server.log")) as server:
        # Each worker guards half of the burst of 30: whichever worker runs dry first answers 429,
        # never later than the 31st guess (two workers each with the whole burst let 52 through).
        assert guesses_until_429(server.base) <= 30
