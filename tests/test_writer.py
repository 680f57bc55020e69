"""The single writer: how it gathers concurrent submits into batches, on each backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from app import cli, store
from app.db import Database
from app.store import ballots
from app.tables import Ballot, SealedBallot, Tally, Turnout
from app.writer import BallotWriter
from tests.conftest import ALL_A, KEYS, TEST_SECRET, mint, open_meeting


class RecordingWriter(BallotWriter):
    """The real writer, noting the size of each batch it commits."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, k=5, keys=KEYS)
        self.batches: list[int] = []

    def _write(self, submissions: list[store.Submission]) -> store.Spent:
        self.batches.append(len(submissions))
        return super()._write(submissions)


def submission(code: str) -> store.Submission:
    return store.Submission(code=code, answers=ALL_A, comment=None)


def test_a_burst_reaching_the_queue_over_several_loop_turns_is_one_batch(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 3)
    writer = RecordingWriter(database)

    async def arrive_after(turns: int, code: str) -> store.Outcome:
        # A request that is still being parsed reaches the queue a few turns of the loop later.
        for _ in range(turns):
            await asyncio.sleep(0)
        return await writer.submit(submission(code))

    async def burst() -> list[store.Outcome]:
        try:
            return await asyncio.gather(*(arrive_after(turns, code) for turns, code in enumerate(codes)))
        finally:
            await writer.stop()

    outcomes = asyncio.run(burst())
    assert [o.status for o in outcomes] == ["counted"] * 3
    assert writer.batches == [3]
    with database.reading() as conn:
        # Three ballots wait sealed: fewer than 2K, so none is readable in the box yet.
        assert conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one() == 3
        assert conn.execute(select(func.count()).select_from(Ballot)).scalar_one() == 0
        assert conn.execute(select(Turnout.ballots, Turnout.sealed)).one() == (3, 3)


def test_ballots_apart_in_time_are_not_held_for_each_other(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    first, second = mint(client, auth, meeting["id"], 2)
    writer = RecordingWriter(database)

    async def two_apart() -> list[store.Outcome]:
        try:
            one = await writer.submit(submission(first))
            await asyncio.sleep(0.05)  # far longer than the writer's gathering window
            return [one, await writer.submit(submission(second))]
        finally:
            await writer.stop()

    outcomes = asyncio.run(two_apart())
    assert [o.status for o in outcomes] == ["counted", "counted"]
    assert writer.batches == [1, 1]


def test_a_batch_with_a_retry_and_a_stranger_counts_the_rest(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    first, second = mint(client, auth, meeting["id"], 2)
    writer = RecordingWriter(database)

    async def together() -> list[store.Outcome]:
        try:
            return await asyncio.gather(
                writer.submit(submission(first)),
                writer.submit(submission(first)),  # the same phone pressing twice
                writer.submit(submission("ZZZZZZZZZZ")),  # no such code
                writer.submit(submission(second)),
            )
        finally:
            await writer.stop()

    outcomes = asyncio.run(together())
    assert writer.batches == [4]
    assert [o.status for o in outcomes] == ["counted", "already_counted", None, "counted"]
    assert outcomes[2].error is not None and outcomes[2].error.problem.code == "token_unknown"
    with database.reading() as conn:
        assert conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one() == 2


def _seal(database: Database, codes: list[str]) -> None:
    with database.writing() as conn:
        spent = store.submit_batch(conn=conn, submissions=[submission(code) for code in codes], keys=KEYS)
    assert [o.status for o in spent.outcomes] == ["counted"] * len(codes)


def _box_and_sealed(database: Database) -> tuple[int, int, tuple[int, int]]:
    with database.reading() as conn:
        return (
            conn.execute(select(func.count()).select_from(Ballot)).scalar_one(),
            conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one(),
            tuple(conn.execute(select(Turnout.ballots, Turnout.sealed)).one()),
        )


def test_a_group_planned_apart_is_written_as_a_mix_would(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """The mixer reads and computes a group outside any write transaction; the writer writes it."""
    meeting = open_meeting(client, auth)
    _seal(database, mint(client, auth, meeting["id"], 12))
    with database.reading() as conn:
        plan = store.plan_mix(conn=conn, meeting_id=meeting["id"], keys=KEYS, k=5)
    assert plan is not None and len(plan.chosen) == len(plan.rows) == 7  # all but K
    with database.writing() as conn:
        assert store.apply_mixes(conn=conn, plans=[plan]) == {meeting["id"]: 5}
    assert _box_and_sealed(database) == (7, 5, (12, 5))
    with database.reading() as conn:
        assert conn.execute(select(Tally.ballot_count, Tally.published_count)).one() == (7, 7)


def test_a_planned_group_is_not_written_once_the_meeting_was_mixed_meanwhile(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """Another worker (or a close) mixed between the plan and its write: the plan is dropped, so
    that no ballot enters the box twice and the tally counts each once."""
    meeting = open_meeting(client, auth)
    _seal(database, mint(client, auth, meeting["id"], 12))
    with database.reading() as conn:
        plan = store.plan_mix(conn=conn, meeting_id=meeting["id"], keys=KEYS, k=5)
    assert plan is not None
    with database.writing() as conn:
        assert store.mix(conn=conn, meeting_id=meeting["id"], keys=KEYS, k=5) == 7
    with database.writing() as conn:
        assert store.apply_mixes(conn=conn, plans=[plan]) == {}
    assert _box_and_sealed(database) == (7, 5, (12, 5))
    with database.reading() as conn:
        assert conn.execute(select(Tally.ballot_count, Tally.published_count)).one() == (7, 7)


def test_postgresql_finds_a_batchs_codes_by_index_not_by_scanning_them_all(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """The batch statements name their codes as one array; the planner must still use the key."""
    if database.is_sqlite:
        pytest.skip("SQLite's statements name the codes one by one")
    meeting = open_meeting(client, auth)
    codes = [code for _ in range(3) for code in mint(client, auth, meeting["id"], 1000)]
    hashes = [KEYS.code_hash(code) for code in codes[:30]]
    params = {"hashes": hashes, "spends": hashes, "ids": [], "meetings": [], "sealed": []}
    with database.writing() as conn:
        conn.execute(text("ANALYZE ballot_token"))
        for statement in (ballots._LOCK_MEETINGS_PG, ballots._LOCK_TOKENS_PG, ballots._SPEND_SEAL_COUNT_PG):
            plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, params).scalars())
            assert "Seq Scan on ballot_token" not in plan, plan
            assert "pk_ballot_token" in plan, plan
        conn.rollback()


# The code whose spend cannot be stored: the ballot itself is sealed, so the test poisons its code.
POISON_CODE = "PQSNED2345"


@pytest.fixture
def poisoned_box(database: Database) -> Iterator[Callable[[], None]]:
    """The spend of POISON_CODE cannot be stored. On PostgreSQL a deferred constraint trigger
    refuses it at COMMIT, so that the batch's commit itself fails; SQLite has no deferred triggers,
    so there its update fails, within the same batch."""
    poisoned = KEYS.code_hash(POISON_CODE)
    with database.writing() as conn:
        if database.is_sqlite:
            conn.execute(text("CREATE TRIGGER poison BEFORE UPDATE ON ballot_token"
                              f" WHEN NEW.hash = '{poisoned}' AND NEW.used BEGIN SELECT RAISE(ABORT, 'poisoned'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                              f" IF NEW.hash = '{poisoned}' AND NEW.used THEN RAISE EXCEPTION 'poisoned'; END IF;"
                              " RETURN NULL; END $$"))
            conn.execute(text("CREATE CONSTRAINT TRIGGER poison AFTER UPDATE ON ballot_token DEFERRABLE"
                              " INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison()"))
    cured = []

    def cure() -> None:
        if not cured:
            with database.writing() as conn:
                conn.execute(text("DROP TRIGGER poison" + ("" if database.is_sqlite else " ON ballot_token")))
                if not database.is_sqlite:
                    conn.execute(text("DROP FUNCTION refuse_poison()"))
            cured.append(True)

    try:
        yield cure
    finally:
        cure()


def test_a_batch_whose_commit_fails_is_retried_one_by_one(
    client: TestClient, auth: dict[str, str], database: Database, poisoned_box: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 5)
    with database.writing() as conn:  # the third card carries the poisoned code
        conn.execute(text("UPDATE ballot_token SET hash = :p WHERE hash = :h"),
                     {"p": KEYS.code_hash(POISON_CODE), "h": KEYS.code_hash(codes[2])})
    codes[2] = POISON_CODE
    writer = RecordingWriter(database)
    answers = [{**ALL_A, "p01": grade} for grade in "ABCDA"]

    async def together() -> list[store.Outcome]:
        try:
            return await asyncio.gather(*(
                writer.submit(store.Submission(code=code, answers=a, comment=None))
                for code, a in zip(codes, answers, strict=True)))
        finally:
            await writer.stop()

    outcomes = asyncio.run(together())
    assert writer.batches == [5]  # one batch, whose commit failed, then each ballot on its own
    assert [o.status for o in outcomes] == ["counted", "counted", None, "counted", "counted"]
    failed = outcomes[2].error
    assert failed is not None and (failed.status, failed.problem.code) == (503, "internal")
    with database.reading() as conn:
        assert conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one() == 4
        assert conn.execute(text("SELECT count(*) FROM ballot_token WHERE used")).scalar_one() == 4
        assert conn.execute(select(Turnout.ballots)).scalar_one() == 4
    poisoned_box()
    # The refused phone still holds its code: sent again once the fault is gone, it counts.
    r = client.post("/api/v1/ballots", json={"token": codes[2], "answers": answers[2]})
    assert r.status_code == 201
    assert client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).status_code == 200
    monkeypatch.setenv("ONSITE_BALLOT_DATABASE_URL", database.url)
    monkeypatch.setenv("ONSITE_BALLOT_SECRET_KEY", TEST_SECRET)
    assert cli.main(["verify", str(meeting["id"])]) == 0
    assert "MATCH" in capsys.readouterr().out
