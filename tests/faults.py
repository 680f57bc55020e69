"""What the fault tests share: a TCP proxy that breaks the service's database connections on
demand, phones that keep sending until they are told "counted", and the checks every fault test
ends with (issue #13).

The proxy sits between the service and PostgreSQL, on a thread of the test process, and can
- drop: reset every open connection (RST), while new ones pass;
- silence: make every open connection a silent dead peer, forwarding nothing and never closing,
  while new ones pass (what a switch or NAT that forgets a connection does);
- slow: hold every chunk for a while, both ways;
- refuse: stop listening (connection refused) and reset the open connections.

The phones behave as the ballot page does: a ballot answered 503 or not answered at all is sent
again, with the same answers, until it is answered 200 or 201 or the test's time is up.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from app.sealing import Sealer, ServerKeys
from app.settings import Settings
from app.tables import Ballot, BallotToken, MeetingSeal, SealedBallot, Turnout
from app.templates import default_template, parse_answers
from bench.client import Connection, post_json
from bench.service import BIN, ROOT, Api

POINTS = [f"p{i:02d}" for i in range(1, 20)]
GRADES = "ABCD"
# A phone waits this long before sending a refused or unanswered ballot again.
RESEND_PAUSE_S = 0.3


def unique_answers(index: int) -> dict[str, str]:
    """A ballot no other index gives (its index in base 4 over the 19 points): a ballot stored twice
    shows up as a repeated answer pattern, although the box holds no link to codes."""
    return {point: GRADES[(index // 4**n) % 4] for n, point in enumerate(POINTS)}


# ---- the proxy ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Pipe:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    silenced: bool = False


class FaultProxy:
    def __init__(self, upstream_port: int = 5432) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.delay = 0.0
        self.accepted = 0
        self._pipes: set[_Pipe] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, action: Callable[[], Awaitable[None]]) -> None:
        asyncio.run_coroutine_threadsafe(action(), self._loop).result(10)

    # the faults, callable from any thread

    def drop(self) -> None:
        self._call(self._reset_all)

    def silence(self) -> None:
        async def silence() -> None:
            for pipe in self._pipes:
                pipe.silenced = True

        self._call(silence)

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def refuse(self) -> None:
        async def refuse() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            await self._reset_all()

        self._call(refuse)

    def heal(self) -> None:
        """New connections pass at full speed again; silenced ones stay dead, as they would."""
        self.delay = 0.0
        if self._server is None:
            self._call(self._listen)

    # inside the proxy's loop

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client.close()
            return
        pipe = _Pipe(client, upstream)
        self._pipes.add(pipe)
        try:
            await asyncio.gather(self._pump(client_reader, upstream, pipe), self._pump(upstream_reader, client, pipe),
                                 return_exceptions=True)
        finally:
            self._pipes.discard(pipe)
            client.close()
            upstream.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, pipe: _Pipe) -> None:
        while data := await source.read(65536):
            if pipe.silenced:
                continue  # swallowed: the other side hears nothing, not even a close
            if self.delay:
                await asyncio.sleep(self.delay)
            sink.write(data)
            await sink.drain()
        if not pipe.silenced:
            sink.close()

    async def _reset_all(self) -> None:
        for pipe in list(self._pipes):
            for writer in (pipe.client, pipe.upstream):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.close()
        self._pipes.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.client.close()
            pipe.upstream.close()
        for pipe in pipes:
            for writer in (pipe.client, pipe.upstream):
                with suppress(OSError):
                    await writer.wait_closed()
        # The pumps see their streams end and return.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=2)


# ---- the phones --------------------------------------------------------------------------------


@dataclass
class Phones:
    """What the phones know: each code's answers, and when and how each was acknowledged."""

    answers: dict[str, dict[str, str]]
    acked: dict[str, int] = field(default_factory=dict)  # code -> 200 or 201
    ack_times: list[float] = field(default_factory=list)
    resent: int = 0  # sends refused (503) or cut, and sent again
    refused: Counter[int] = field(default_factory=Counter)
    wrong: list[tuple[str, int]] = field(default_factory=list)  # answers that are neither ack nor 503

    @classmethod
    def for_codes(cls, codes: list[str]) -> Phones:
        return cls({code: unique_answers(index) for index, code in enumerate(codes)})

    def longest_silence(self, started: float) -> float:
        """The longest time without an acknowledgement, from the start to the last one."""
        times = [started, *sorted(self.ack_times)]
        return max(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else float("inf")

    async def send_all(self, port: int, *, clients: int, rate: float, deadline: float) -> None:
        """Send every ballot from `clients` phones, about `rate` a second in all, until `deadline`
        (time.monotonic()); each phone sends its ballot again until it is acknowledged."""
        queue = iter(list(self.answers))
        pause = clients / rate

        async def phone() -> None:
            conn: Connection | None = None
            for code in queue:
                while time.monotonic() < deadline:
                    try:
                        conn = conn or await Connection.open("127.0.0.1", port)
                        body = {"token": code, "answers": self.answers[code]}
                        status, _ = await conn.request(post_json("/api/v1/ballots", body))
                    except (OSError, asyncio.IncompleteReadError, TimeoutError):
                        status = 0  # cut, or no answer: the phone cannot know whether it counted
                        if conn is not None:
                            conn.close()
                        conn = None
                    if status in (200, 201):
                        self.acked[code] = status
                        self.ack_times.append(time.monotonic())
                        break
                    if status not in (0, 503):
                        self.wrong.append((code, status))
                        break
                    self.refused[status] += 1
                    self.resent += 1
                    await asyncio.sleep(RESEND_PAUSE_S)
                await asyncio.sleep(pause)
            if conn is not None:
                conn.close()

        await asyncio.gather(*(phone() for _ in range(clients)))


async def when_acked(phones: Phones, count: int, action: Callable[[], object]) -> float:
    """Run `action` once `count` ballots are acknowledged; returns when (time.monotonic())."""
    while len(phones.acked) < count:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(action)
    return time.monotonic()


# ---- the checks every fault test ends with -------------------------------------------------------


def check_box(database_url: str, meeting_id: int, phones: Phones, env: dict[str, str]) -> None:
    """Acknowledged = kept, no ballot twice, spent codes = ballots = the live count.

    A ballot is kept in the box once mixed, or sealed until then: the sealed ones are opened with
    the keys the service derives from its secret (in its data folder, from ``env``)."""
    template = default_template()
    keys = ServerKeys.from_secret(Settings(data_dir=Path(env["ONSITE_BALLOT_DATA_DIR"])).secret())
    engine = create_engine(database_url)
    snapshot = "SERIALIZABLE" if database_url.startswith("sqlite") else "REPEATABLE READ"
    try:
        # One moment of the database: the service may be mixing meanwhile.
        with engine.connect().execution_options(isolation_level=snapshot) as conn:
            box = [json.loads(answers) for answers in conn.execute(
                select(Ballot.answers).where(Ballot.meeting_id == meeting_id)).scalars()]  # type: ignore[arg-type]
            salt = conn.execute(select(MeetingSeal.salt).where(MeetingSeal.meeting_id == meeting_id)).scalar()
            sealed = list(conn.execute(select(SealedBallot.sealed).where(
                SealedBallot.meeting_id == meeting_id)).scalars())  # type: ignore[arg-type]
            spent = set(conn.execute(select(BallotToken.hash).where(
                BallotToken.meeting_id == meeting_id, BallotToken.used.is_(True))).scalars())  # type: ignore[arg-type, attr-defined]
            counted = conn.execute(select(Turnout.ballots).where(Turnout.meeting_id == meeting_id)).scalar_one()
    finally:
        engine.dispose()
    if sealed:
        assert salt is not None
        sealer = Sealer(keys.meeting_key(salt), meeting_id, 0)
        box += [sealer.open(blob).answers for blob in sealed]
    canonical = {code: json.dumps(parse_answers(template, answers), sort_keys=True)
                 for code, answers in phones.answers.items()}
    in_box = Counter(json.dumps(answers, sort_keys=True) for answers in box)
    assert phones.wrong == []
    # every acknowledged ballot is kept, and nothing is kept that no phone sent
    assert {canonical[code] for code in phones.acked} <= set(in_box)
    assert set(in_box) <= set(canonical.values())
    # no ballot twice; a spent code for each ballot; the live count moved with them
    assert [pattern for pattern, n in in_box.items() if n > 1] == []
    assert {keys.code_hash(code) for code in phones.acked} <= spent
    assert len(spent) == len(box) == counted


def close_and_verify(api: Api, meeting_id: int, env: dict[str, str], phones: Phones) -> dict[str, Any]:
    """Close the meeting through the API, then `onsite-ballot verify` must pass."""
    result: dict[str, Any] = api.close(meeting_id)
    assert result["figures"]["ballots"] == len(phones.acked)
    verify = subprocess.run([str(BIN / "onsite-ballot"), "verify", str(meeting_id)], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return result
