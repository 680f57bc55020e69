"""Nothing acknowledged is lost: SIGKILL the real server mid-stream, restart it, check the box.

The server runs as a user runs it (`onsite-ballot serve` in a subprocess: SQLite with one
worker; PostgreSQL with two workers in a database of its own, `crashtest`). Many clients
submit ballots; after some are acknowledged the whole process group gets SIGKILL. After a
restart: every acknowledged ballot is stored, spent tokens equal ballots, no row is half
written, every unanswered ballot can be sent again, and the meeting closes to the result
computed here from the ballots sent.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app import recount
from app.db import create_database
from app.scoring import Rules, compute, exact, score_ballot
from app.sealing import Sealer, ServerKeys
from app.settings import Settings
from app.tables import Ballot, BallotToken, MeetingSeal, SealedBallot, Tally, Turnout
from app.templates import default_template, parse_answers
from bench.client import Connection, post_json
from bench.service import Api, Server, create_api_key, free_port, service, service_env
from tests.conftest import PG_URL, side_database

pytestmark = pytest.mark.slow

BALLOTS = 400
CLIENTS = 32
# Kill once this many are acknowledged: well inside the stream, with many still in flight.
KILL_AFTER = 120
CRASH_DATABASE = side_database("crash") if PG_URL else ""
# Reads that see one moment of the database: SQLite's read transaction already does.
SNAPSHOT = {"sqlite": "SERIALIZABLE", "postgresql": "REPEATABLE READ"}
POINTS = [f"p{i:02d}" for i in range(1, 20)]


@dataclass
class Stream:
    """What the phones know: what they sent, and which sends were answered 200/201."""

    answers: dict[str, dict[str, str]]
    attempted: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    cut: int = 0  # sends that lost their connection: unknown to the phone


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="TEST_DATABASE_URL is not set"))])
def crash_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Empty for SQLite (the data folder's file); a fresh `crashtest` database for PostgreSQL."""
    if request.param == "sqlite":
        yield ""
        return
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {CRASH_DATABASE} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {CRASH_DATABASE}"))
    yield make_url(PG_URL).set(database=CRASH_DATABASE).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {CRASH_DATABASE} WITH (FORCE)"))
    admin.dispose()


async def submit_until_killed(server: Server, codes: list[str], stream: Stream) -> None:
    queue = iter(codes)
    killed = asyncio.Event()

    async def phone() -> None:
        conn = await Connection.open("127.0.0.1", server.port)
        try:
            for code in queue:
                stream.attempted.append(code)
                raw = post_json("/api/v1/ballots", {"token": code, "answers": stream.answers[code]})
                try:
                    status, _ = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError):
                    stream.cut += 1
                    return
                if status in (200, 201):
                    stream.acknowledged.append(code)
                    if len(stream.acknowledged) == KILL_AFTER:
                        server.kill()
                        killed.set()
                else:
                    stream.refused.append((code, status))
        finally:
            conn.close()

    await asyncio.gather(*(phone() for _ in range(CLIENTS)))
    assert killed.is_set(), "the server answered every ballot before it could be killed"


async def resend(port: int, codes: list[str], answers: dict[str, dict[str, str]]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    conn = await Connection.open("127.0.0.1", port)
    try:
        for code in codes:
            status, _ = await conn.request(post_json("/api/v1/ballots", {"token": code, "answers": answers[code]}))
            statuses[status] += 1
    finally:
        conn.close()
    return statuses


def test_acknowledged_ballots_survive_sigkill(crash_database_url: str, tmp_path: Path) -> None:
    backend = "postgresql" if crash_database_url else "sqlite"
    env = service_env(tmp_path / "data", free_port(), crash_database_url)
    key = create_api_key(env, "crash-test")
    server = service(env, workers=2 if backend == "postgresql" else 1, log=tmp_path / "server.log")
    template = default_template()
    rng = random.Random(7)

    server.start()
    try:
        api = Api(server.base, key)
        api.unit("CRASH01")
        meeting_id = api.open_meeting("CRASH01", "断电测试", BALLOTS)
        codes = api.mint(meeting_id, BALLOTS)
        api.http.close()
        stream = Stream({code: {p: rng.choice("ABCD") for p in POINTS} for code in codes})
        asyncio.run(submit_until_killed(server, codes, stream))
    finally:
        server.stop()
    assert stream.refused == []
    assert len(stream.acknowledged) >= KILL_AFTER

    server.start()
    try:
        keys = ServerKeys.from_secret(Settings(data_dir=tmp_path / "data").secret())
        database = create_database(crash_database_url or f"sqlite:///{tmp_path / 'data' / 'onsite-ballot.db'}")
        try:
            # One snapshot for every read below: the restarted writer may be mixing meanwhile.
            with database.read.connect().execution_options(isolation_level=SNAPSHOT[backend]) as conn:
                boxed = conn.execute(
                    select(Ballot.answers, Ballot.total).where(Ballot.meeting_id == meeting_id)
                ).all()
                salt = conn.execute(select(MeetingSeal.salt).where(MeetingSeal.meeting_id == meeting_id)).scalar()
                sealed = conn.execute(
                    select(SealedBallot.sealed).where(SealedBallot.meeting_id == meeting_id)
                ).scalars().all()
                used = set(conn.execute(select(BallotToken.hash).where(BallotToken.used.is_(True))).scalars())
                turnout = conn.execute(
                    select(Turnout.ballots, Turnout.sealed).where(Turnout.meeting_id == meeting_id)
                ).one()
                box_count = conn.execute(select(Tally.ballot_count).where(Tally.meeting_id == meeting_id)).scalar_one()
        finally:
            database.dispose()
        opened = [Sealer(keys.meeting_key(salt), meeting_id, 0).open(blob).answers for blob in sealed]
        stored = [(json.loads(answers), total) for answers, total in boxed]

        sent = Counter(json.dumps(parse_answers(template, stream.answers[c]), sort_keys=True) for c in stream.attempted)
        acked = Counter(json.dumps(parse_answers(template, stream.answers[c]), sort_keys=True) for c in stream.acknowledged)
        kept = Counter(json.dumps(answers, sort_keys=True) for answers in [*(a for a, _ in stored), *opened])
        # Every acknowledged ballot is kept (in the box, or sealed and waiting), its token spent;
        # nothing is there that was not sent.
        assert acked - kept == Counter()
        assert kept - sent == Counter()
        assert {keys.code_hash(c) for c in stream.acknowledged} <= used
        # Ledger, box and sealed ballots agree, and the counters moved in the same transactions.
        assert len(used) == len(stored) + len(opened) == turnout.ballots
        assert (turnout.sealed, box_count) == (len(opened), len(stored))
        # No half-written row: each ballot is a whole, valid ballot with its right total.
        for answers, total in stored:
            assert parse_answers(template, answers) == answers
            assert total == format(score_ballot(template, answers, None).total, "f")
        for answers in opened:
            assert parse_answers(template, answers) == answers
        stored_count = len(stored) + len(opened)

        # The phones that got no answer send again: each is counted now or was already.
        unanswered = [c for c in stream.attempted if c not in set(stream.acknowledged)]
        statuses = asyncio.run(resend(server.port, unanswered, stream.answers))
        assert set(statuses) <= {200, 201}
        assert statuses[200] == stored_count - len(stream.acknowledged)
        assert statuses[201] == len(stream.attempted) - stored_count

        api = Api(server.base, key)
        result = api.close(meeting_id)
        assert api.tally(meeting_id)["ballots_counted"] == len(stream.attempted)
        audit = recount.parse_audit(api.http.get(f"/api/v1/meetings/{meeting_id}/audit").content)
        api.http.close()
    finally:
        server.stop()

    canonical = [parse_answers(template, stream.answers[c]) for c in stream.attempted]
    expected = compute(template, [score_ballot(template, a, None) for a in canonical], [], Rules())
    assert expected.score is not None
    assert result["figures"]["ballots"] == len(stream.attempted)
    assert result["figures"]["score"]["exact"] == exact(expected.score)
    # The box holds exactly the ballots sent, and the published digest is theirs (with the rules,
    # template and unit that app.figures.result_digest adds, as the audit file gives them).
    assert sorted(json.dumps(b.answers, sort_keys=True) for b in audit.ballots) == sorted(
        json.dumps(a, sort_keys=True) for a in canonical
    )
    assert recount.recount(audit).digest == result["digest"]
