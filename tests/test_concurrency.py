"""One token, many simultaneous submits: exactly one ballot, on each backend."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import store
from app.db import Database
from app.tables import BallotToken, SealedBallot, Turnout
from tests.conftest import ALL_A, KEYS, mint, open_meeting

PARALLEL = 16


def test_same_token_in_parallel_transactions_stores_one_ballot(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """Each thread runs its own transaction, as separate worker processes would."""
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    start = threading.Barrier(PARALLEL)

    def spend() -> str | None:
        start.wait()
        with database.writing() as conn:
            spent = store.submit_batch(
                conn=conn, submissions=[store.Submission(code=code, answers=ALL_A, comment=None)], keys=KEYS
            )
        return spent.outcomes[0].status

    with ThreadPoolExecutor(PARALLEL) as pool:
        statuses = list(pool.map(lambda _: spend(), range(PARALLEL)))
    assert sorted(statuses, key=str) == ["already_counted"] * (PARALLEL - 1) + ["counted"]
    with database.reading() as conn:
        assert conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one() == 1
        assert conn.execute(select(BallotToken.used)).scalars().all() == [True]
        assert conn.execute(select(Turnout.ballots, Turnout.sealed)).one() == (1, 1)


def test_same_token_in_parallel_http_requests(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    [code, other] = mint(client, auth, meeting["id"], 2)
    start = threading.Barrier(PARALLEL)

    def post(token: str) -> int:
        start.wait()
        return client.post("/api/v1/ballots", json={"token": token, "answers": ALL_A}).status_code

    with ThreadPoolExecutor(PARALLEL) as pool:
        codes = [code] * (PARALLEL - 1) + [other]
        statuses = list(pool.map(post, codes))
    assert sorted(statuses) == [200] * (PARALLEL - 2) + [201, 201]
    with database.reading() as conn:
        assert conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one() == 2
        assert conn.execute(select(Turnout.ballots)).scalar_one() == 2


def test_batches_and_mixes_of_several_meetings_at_once_never_deadlock(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """Workers write batches that span the same meetings, while mixers mix them: every one takes the
    meetings' counts in the order of their ids (PostgreSQL would otherwise find a deadlock, and
    refuse a batch, whenever two took them in opposite orders)."""
    meetings = [open_meeting(client, auth)["id"] for _ in range(10)]
    rounds, per_meeting = 12, 2
    codes = {m: mint(client, auth, m, 2 * rounds * per_meeting) for m in meetings}
    start = threading.Barrier(3)

    def write(worker: int) -> None:
        start.wait()
        for n in range(rounds):
            at = (2 * n + worker) * per_meeting
            batch = [code for m in meetings for code in codes[m][at : at + per_meeting]]
            with database.writing() as conn:
                spent = store.submit_batch(
                    conn=conn, submissions=[store.Submission(code=c, answers=ALL_A, comment=None) for c in batch],
                    keys=KEYS,
                )
            assert [o.status for o in spent.outcomes] == ["counted"] * len(batch)

    def mix() -> None:
        start.wait()
        for _ in range(rounds):
            with database.writing() as conn:  # all three in one transaction, as after a restart
                for m in meetings:
                    store.mix(conn=conn, meeting_id=m, keys=KEYS, k=2)

    with ThreadPoolExecutor(3) as pool:
        for done in [pool.submit(write, 0), pool.submit(write, 1), pool.submit(mix)]:
            done.result()
    with database.reading() as conn:
        assert sorted(conn.execute(select(Turnout.ballots)).scalars()) == [2 * rounds * per_meeting] * len(meetings)
