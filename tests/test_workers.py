"""Several server processes on one PostgreSQL database: a code is still spent once.

Two `onsite-ballot serve` processes share the database `workerstest`; the same code goes to both at
the same moment, many times over: each time exactly one answers 201 and the other 200 "already
counted", and the box holds one ballot per code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from bench.service import Api, create_api_key, free_port, recreate_pg_database, running, service, service_env
from tests.conftest import ALL_A, PG_URL, TEST_SECRET, side_database

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")]

CODES = 40
WORKERS_DATABASE = side_database("workers") if PG_URL else ""


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[str, str, str, str]]:
    url = recreate_pg_database(WORKERS_DATABASE)
    with ExitStack() as stack:
        bases, key = [], ""
        for index in range(2):
            # Hosts that share a database share the secret: it keys the codes and the sealing.
            env = {**service_env(tmp_path / f"data{index}", free_port(), url), "ONSITE_BALLOT_SECRET_KEY": TEST_SECRET}
            if index == 0:
                key = create_api_key(env, "workers-test")
            bases.append(stack.enter_context(running(service(env, 1, tmp_path / f"server{index}.log"))).base)
        yield bases[0], bases[1], key, url


def send_twice(code: str, first: str, second: str) -> tuple[int, int]:
    """The same ballot to both processes at the same moment; their two statuses."""
    start = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def send(base: str) -> None:
        with httpx.Client(timeout=10) as client:
            start.wait()
            statuses[base] = client.post(f"{base}/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code

    threads = [threading.Thread(target=send, args=(base,)) for base in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses[first], statuses[second]


def test_the_same_code_sent_to_two_processes_at_once_counts_once(two_servers: tuple[str, str, str, str]) -> None:
    first, second, key, url = two_servers
    api = Api(first, key)
    try:
        api.unit("W1")
        meeting_id = api.open_meeting("W1", "两个进程", CODES)
        codes = api.mint(meeting_id, CODES)
    finally:
        api.http.close()
    outcomes = [send_twice(code, first, second) for code in codes]
    assert all(sorted(pair) == [200, 201] for pair in outcomes), outcomes
    engine = create_engine(url)
    with engine.connect() as conn:
        # Kept: in the box once mixed, sealed until then (both processes mix, one group at a time).
        ballots = conn.execute(text(
            "SELECT (SELECT count(*) FROM ballot WHERE meeting_id = :m) + (SELECT count(*) FROM sealed_ballot"
            " WHERE meeting_id = :m)"), {"m": meeting_id}).scalar_one()
        spent = conn.execute(text("SELECT count(*) FROM ballot_token WHERE used")).scalar_one()
        counted = conn.execute(text("SELECT ballots FROM turnout WHERE meeting_id = :m"), {"m": meeting_id}).scalar_one()
    engine.dispose()
    assert (ballots, spent, counted) == (CODES, CODES, CODES)
