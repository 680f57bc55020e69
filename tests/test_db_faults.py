"""PostgreSQL's connections fail under a voting room (issue #13, point 1 and the tests it asks for).

`onsite-ballot serve --workers 2` talks to PostgreSQL through tests.faults.FaultProxy, which drops,
silences, slows or refuses its connections while phones send ballots. After each fault: every
acknowledged ballot is stored, none twice, spent codes = ballots = the live count, every phone got
its ballot counted within a stated time, and `onsite-ballot verify` passes after the close.

The worst of them, a connection gone silent (no reset, no answer), once stopped all voting for as
long as it lasted: both workers' writers waited forever. Now the writer's watchdog abandons a batch
after app.db.PG_BATCH_SECONDS, cuts the connection and runs the batch again on a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db import PG_BATCH_SECONDS
from bench.service import Api, Server, create_api_key, free_port, recreate_pg_database, running, service, service_env
from tests.conftest import PG_URL
from tests.faults import FaultProxy, Phones, check_box, close_and_verify, when_acked

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")]

BALLOTS = 300
CLIENTS = 16
RATE = 150.0  # ballots a second, from all phones together
DEADLINE_S = 60.0
FAULT_AFTER = 100  # acknowledged ballots before the fault


class Room:
    def __init__(self, server: Server, proxy: FaultProxy, api: Api, env: dict[str, str], url: str) -> None:
        self.server, self.proxy, self.api, self.env, self.url = server, proxy, api, env, url

    def meeting(self, unit: str) -> tuple[int, list[str]]:
        self.api.unit(unit)
        meeting_id = self.api.open_meeting(unit, f"故障测试 {unit}", BALLOTS)
        return meeting_id, self.api.mint(meeting_id, BALLOTS)

    def readiness(self) -> tuple[int, str]:
        try:
            r = httpx.get(f"{self.server.base}/readyz", timeout=10)
        except httpx.HTTPError as error:
            return 0, type(error).__name__
        return r.status_code, r.json().get("reason", "")


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    url = recreate_pg_database(f"{make_url(PG_URL).database}_faults")
    data = tmp_path_factory.mktemp("faults") / "data"
    direct = service_env(data, free_port(), url)
    key = create_api_key(direct, "faults")  # migrates, straight to PostgreSQL
    with FaultProxy() as proxy:
        through = make_url(url).set(port=proxy.port).render_as_string(hide_password=False)
        env = {**direct, "ONSITE_BALLOT_DATABASE_URL": through}
        with running(service(env, 2, data.parent / "server.log")) as server:
            api = Api(server.base, key)
            yield Room(server, proxy, api, direct, url)
            api.http.close()


def vote_through(room: Room, meeting_id: int, phones: Phones, fault: object) -> float:
    """Phones send every ballot; `fault` (a coroutine function of the start time) runs beside them."""

    async def scenario() -> float:
        started = time.monotonic()
        sending = asyncio.create_task(
            phones.send_all(room.server.port, clients=CLIENTS, rate=RATE, deadline=started + DEADLINE_S))
        await fault(started)  # type: ignore[operator]
        await sending
        return started

    try:
        return asyncio.run(scenario())
    finally:
        room.proxy.heal()


def test_connections_reset_mid_burst(room: Room) -> None:
    meeting_id, codes = room.meeting("DROP1")
    phones = Phones.for_codes(codes)
    accepted = room.proxy.accepted

    async def fault(started: float) -> None:
        await when_acked(phones, FAULT_AFTER, room.proxy.drop)

    started = vote_through(room, meeting_id, phones, fault)
    assert len(phones.acked) == BALLOTS
    assert room.proxy.accepted > accepted  # the workers connected anew after the reset
    assert phones.longest_silence(started) < 3.0
    check_box(room.url, meeting_id, phones, room.env)
    close_and_verify(room.api, meeting_id, room.env, phones)


def test_connections_gone_silent_are_abandoned_and_the_ballots_stored_once(room: Room) -> None:
    meeting_id, codes = room.meeting("MUTE1")
    phones = Phones.for_codes(codes)
    seen: list[tuple[int, str]] = []

    async def fault(started: float) -> None:
        await when_acked(phones, FAULT_AFTER, room.proxy.silence)
        # What a load balancer sees meanwhile: a worker whose writer is stuck is not ready.
        while len(phones.acked) < BALLOTS and time.monotonic() < started + DEADLINE_S:
            seen.append(await asyncio.to_thread(room.readiness))
            await asyncio.sleep(0.5)

    started = vote_through(room, meeting_id, phones, fault)
    assert len(phones.acked) == BALLOTS
    # Voting stops for one watchdog bound at most, plus the cut and the batch run again.
    assert phones.longest_silence(started) < PG_BATCH_SECONDS + 5
    assert {reason for status, reason in seen if status == 503} & {"writer_stuck", "database_timeout"}, seen
    assert [room.readiness() for _ in range(4)] == [(200, "")] * 4
    check_box(room.url, meeting_id, phones, room.env)
    close_and_verify(room.api, meeting_id, room.env, phones)


def test_a_slow_network_slows_voting_but_loses_nothing(room: Room) -> None:
    meeting_id, codes = room.meeting("SLOW1")
    phones = Phones.for_codes(codes)

    async def fault(started: float) -> None:
        await when_acked(phones, FAULT_AFTER, lambda: room.proxy.slow(0.1))  # 200 ms a round trip
        await asyncio.sleep(4)
        room.proxy.heal()

    started = vote_through(room, meeting_id, phones, fault)
    assert len(phones.acked) == BALLOTS
    assert phones.refused == {}
    assert phones.longest_silence(started) < 5.0
    check_box(room.url, meeting_id, phones, room.env)
    close_and_verify(room.api, meeting_id, room.env, phones)


def test_a_database_that_refuses_connections_for_a_while(room: Room, tmp_path: Path) -> None:
    meeting_id, codes = room.meeting("DOWN1")
    phones = Phones.for_codes(codes)
    refused_for = 5.0
    during: list[tuple[int, str]] = []

    async def fault(started: float) -> None:
        await when_acked(phones, FAULT_AFTER, room.proxy.refuse)
        await asyncio.sleep(refused_for / 2)
        during.append(await asyncio.to_thread(room.readiness))
        await asyncio.sleep(refused_for / 2)
        room.proxy.heal()

    started = vote_through(room, meeting_id, phones, fault)
    assert len(phones.acked) == BALLOTS
    assert phones.refused[503] > 0  # refused plainly, kept by the phones, sent again
    assert during[0][0] == 503
    # Voting resumes within 3 s of the database's return.
    assert phones.longest_silence(started) < refused_for + 3
    check_box(room.url, meeting_id, phones, room.env)
    close_and_verify(room.api, meeting_id, room.env, phones)
