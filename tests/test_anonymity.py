"""The attacks of issue #11, each as a test: whoever holds the database files, whoever holds a spent
card, and whoever compares two publications must learn nothing about a group smaller than K.

Each test failed on the code before the sealing and mixing (2026-12-02): the spend and the ballot
shared a transaction (xmin join on PostgreSQL, one WAL commit on SQLite), the box kept arrival
order, a spent code answered 409 to other answers, live steps were one ballot apart from the close,
and closing again after one late ballot was allowed.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db import Database
from app.main import create_app
from app.scoring import canonical_json, score_ballot
from app.settings import Settings
from app.templates import default_template
from app.tokens import plain_hash
from tests.conftest import KEYS, TEST_SECRET, mint, open_meeting, settle
from tests.test_access import PASSWORD, sign_in

K = 5
POINTS = [f"p{i:02d}" for i in range(1, 20)]


def ballot(n: int) -> dict[str, str]:
    """A different ballot for each n (its answers' text is unique among the first few hundred)."""
    return {point: "ABCD"[(n >> (i % 8)) % 4 if i % 3 else (n + i) % 4] for i, point in enumerate(POINTS)}


def submit(client: TestClient, code: str, n: int, comment: str | None = None) -> None:
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ballot(n), "comment": comment})
    assert r.status_code == 201, r.text


def close(client: TestClient, auth: dict[str, str], meeting_id: int, **body: Any) -> Any:
    return client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth, json=body or None)


# ---- whoever holds the SQLite files ---------------------------------------------------------------


def sqlite_files(database: Database) -> bytes:
    path = Path(database.url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                    if p.exists())


def wal_commits(database: Database) -> list[bytes]:
    """The write-ahead log read as a file holder would: each commit's pages, stale frames included."""
    path = Path(database.url.removeprefix("sqlite:///") + "-wal")
    data = path.read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    commits, pages, offset = [], [], 32
    while offset + 24 + page_size <= len(data):
        pages.append(data[offset + 24 : offset + 24 + page_size])
        if int.from_bytes(data[offset + 4 : offset + 8], "big"):  # a commit frame: the database size after it
            commits.append(b"".join(pages))
            pages = []
        offset += 24 + page_size
    return commits


def test_sqlite_files_hold_no_readable_ballot_until_a_group_of_k_is_mixed(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite's files; PostgreSQL's are read in the next tests")
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 12)
    marks = [f"MARK-{secrets.token_hex(6)}-{n}" for n in range(12)]
    for n in range(2 * K - 1):
        submit(client, codes[n], n, marks[n])
        settle(client)
    files = sqlite_files(database)
    for n in range(2 * K - 1):
        assert marks[n].encode() not in files, "a comment is readable before it was mixed"
        assert canonical_json(ballot(n)).encode() not in files, "answers are readable before they were mixed"
    submit(client, codes[2 * K - 1], 2 * K - 1, marks[2 * K - 1])
    settle(client)
    files = sqlite_files(database)
    readable = [n for n in range(2 * K) if marks[n].encode() in files]
    # The check can see a ballot: exactly the K chosen at random for the first group are readable now.
    assert len(readable) == K
    spent_hashes = [KEYS.code_hash(code).encode() for code in codes[: 2 * K]]
    with_ballots = 0
    for commit in wal_commits(database):
        mixed = {n for n in range(2 * K) if marks[n].encode() in commit}
        if mixed:
            with_ballots += 1
            # Readable ballots are written K or more at a time, and never in a commit that spends a code.
            assert len(mixed) >= K
            assert not any(h in commit for h in spent_hashes)
    assert with_ballots >= 1


def test_the_ledger_keeps_keyed_hashes_not_the_codes_sha256(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 3)
    with database.reading() as conn:
        stored = set(conn.execute(text("SELECT hash FROM ballot_token")).scalars())
    # A copy of the database cannot be searched for codes by hashing guesses: the key is not in it.
    assert stored == {KEYS.code_hash(code) for code in codes}
    assert not stored & {plain_hash(code) for code in codes}


def test_close_destroys_the_meeting_key_and_empties_the_sqlite_log(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    with database.reading() as conn:
        salt = conn.execute(text("SELECT salt FROM meeting_seal WHERE meeting_id = :m"), {"m": meeting["id"]}).scalar()
    assert salt is not None and len(salt) == 32
    for n, code in enumerate(mint(client, auth, meeting["id"], K)):
        submit(client, code, n)
    assert close(client, auth, meeting["id"]).status_code == 200
    with database.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM meeting_seal")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM sealed_ballot")).scalar() == 0
    if database.is_sqlite:
        path = Path(database.url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert salt not in sqlite_files(database)
    else:
        files = postgres_files(database, ["meeting_seal"])
        if files is None:
            pytest.skip("PostgreSQL's files are not readable here")
        assert salt not in files


# ---- whoever holds PostgreSQL's files and transaction ids -----------------------------------------


def postgres_files(database: Database, tables: list[str] | None = None) -> bytes | None:
    """The bytes a holder of the server's files reads: the tables' files (or the whole database
    directory) and the write-ahead log. None when this process cannot read them."""
    with database.reading() as conn:
        root = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        names = [conn.execute(text("SELECT pg_relation_filepath(:t)"), {"t": t}).scalar_one() for t in tables or []]
        base = conn.execute(
            text("SELECT 'base/' || oid FROM pg_database WHERE datname = current_database()")
        ).scalar_one()
    try:
        if tables:
            return b"".join((root / name).read_bytes() for name in names)
        chunks = [p.read_bytes() for p in (root / base).iterdir() if p.is_file()]
        chunks += [p.read_bytes() for p in (root / "pg_wal").iterdir() if p.is_file()]
    except PermissionError:
        return None
    return b"".join(chunks)


def test_postgresql_never_pairs_a_spend_with_a_readable_ballot(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    if database.is_sqlite:
        pytest.skip("transaction ids and the write-ahead log of PostgreSQL")
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 3 * K)
    marks = [f"MARK-{secrets.token_hex(6)}-{n}" for n in range(3 * K)]
    for n in range(2 * K - 1):
        submit(client, codes[n], n, marks[n])
    settle(client)
    files = postgres_files(database)
    if files is not None:
        assert not any(mark.encode() in files for mark in marks), "a comment is readable before it was mixed"
    for n in range(2 * K - 1, 3 * K):
        submit(client, codes[n], n, marks[n])
        settle(client)
    assert close(client, auth, meeting["id"]).status_code == 200
    with database.reading() as conn:
        joined = conn.execute(text("SELECT count(*) FROM ballot b JOIN ballot_token t ON b.xmin = t.xmin")).scalar()
        groups = conn.execute(text("SELECT count(*) FROM ballot GROUP BY xmin::text")).scalars().all()
    assert joined == 0, "a ballot shares a transaction id with the spend of a code"
    assert sum(groups) == 3 * K and min(groups) >= K
    if files is not None:
        files = postgres_files(database)
        assert files is not None and all(mark.encode() in files for mark in marks)  # the search can find them


@pytest.fixture
def settings_k20(settings: Settings) -> Settings:
    return settings.model_copy(update={"k_anonymity": 20})


def test_postgresql_row_order_does_not_follow_arrival(
    settings_k20: Settings, database: Database, api_key: str
) -> None:
    if database.is_sqlite:
        pytest.skip("ctid is PostgreSQL's; SQLite's box is ordered by its random ids")
    auth = {"Authorization": f"Bearer {api_key}"}
    with TestClient(create_app(settings_k20, database)) as client:
        meeting = open_meeting(client, auth)
        codes = mint(client, auth, meeting["id"], 20)
        for n, code in enumerate(codes):
            submit(client, code, n, f"arrived {n:02d}")
            settle(client)
        assert close(client, auth, meeting["id"]).status_code == 200
    with database.reading() as conn:
        order = conn.execute(text("SELECT comment FROM ballot ORDER BY ctid")).scalars().all()
    arrival = [f"arrived {n:02d}" for n in range(20)]
    assert sorted(order) == arrival
    # One group of 20 written in random order: 1 in 20! that it happens to be the arrival order.
    assert order != arrival


# ---- whoever holds a spent card ------------------------------------------------------------------


def test_a_spent_card_cannot_be_probed_for_the_answers_it_counted(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """The foundation's probe: all-好, all-较好, all-一般, all-差 sent to six spent cards told the
    uniform voters apart. Now every probe gets the same bytes back."""
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 6)
    cast = ["A", "B", "C", "D", "A", "B"]
    for code, grade in zip(codes, cast, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": dict.fromkeys(POINTS, grade)})
        assert r.status_code == 201
    replies = {
        (client.post("/api/v1/ballots", json={"token": code, "answers": dict.fromkeys(POINTS, grade)}).status_code,
         client.post("/api/v1/ballots", json={"token": code, "answers": dict.fromkeys(POINTS, grade)}).content)
        for code in codes
        for grade in "ABCD"
    }
    assert replies == {(200, b'{"status":"already_counted","message":"\xe8\xbf\x99\xe5\xbc\xa0\xe6\xb5\x8b\xe8\xaf'
                        b'\x84\xe7\xa5\xa8\xe6\xad\xa4\xe5\x89\x8d\xe5\xb7\xb2\xe7\xbb\x8f\xe8\xae\xa1\xe5\x85\xa5'
                        b'\xef\xbc\x8c\xe6\x97\xa0\xe9\x9c\x80\xe5\x86\x8d\xe6\xac\xa1\xe6\x8f\x90\xe4\xba\xa4\xe3'
                        b'\x80\x82"}')}


def test_the_claim_cookie_leaves_the_phone_once_its_ballot_counted(
    client: TestClient, auth: dict[str, str]
) -> None:
    from app.routes.ballot import CLAIM_COOKIE, CLAIM_DONE
    from app.routes.pages import screen_key

    meeting = open_meeting(client, auth, mode="screen", attendance=3)
    key = screen_key(TEST_SECRET, meeting["id"])
    code = client.post(f"/s/{key}", follow_redirects=False).headers["location"].removeprefix("/b/")
    assert client.cookies.get(CLAIM_COOKIE) == code
    sent = client.post(f"/b/{code}", data=ballot(1), follow_redirects=False)
    assert (sent.status_code, sent.headers["location"]) == (303, f"/s/{key}/thanks")
    thanks = client.get(sent.headers["location"])
    assert thanks.status_code == 200
    assert CLAIM_COOKIE not in client.cookies  # the code is off the phone
    assert client.cookies.get(CLAIM_DONE) == "1"
    # The same phone opening the screen link again: "already counted", no second code.
    again = client.get(f"/s/{key}", follow_redirects=False)
    assert again.status_code == 200 and "location" not in again.headers
    assert client.post(f"/s/{key}", follow_redirects=False).status_code == 200
    assert client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["tokens_issued"] == 1


# ---- whoever compares two publications -----------------------------------------------------------


def test_no_two_publications_differ_by_fewer_than_k(client: TestClient, auth: dict[str, str]) -> None:
    """The step-vs-close attack: figures at 15 ballots and at the close with 16 gave the 16th ballot."""
    meeting = open_meeting(client, auth, trim=0)
    codes = mint(client, auth, meeting["id"], 16)
    published = {0}
    for n, code in enumerate(codes):
        submit(client, code, n)
        settle(client)
        published.add(client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["published_at_count"])
    assert close(client, auth, meeting["id"]).status_code == 200
    published.add(16)
    steps = sorted(published)
    assert steps == [0, 5, 10, 16]
    assert all(b - a >= K for a, b in itertools.pairwise(steps))


def group_meeting(client: TestClient, auth: dict[str, str], cards: dict[str, int], **overrides: Any) -> int:
    meeting = open_meeting(client, auth, trim=0, **overrides)
    n = 0
    for group, count in cards.items():
        for code in mint(client, auth, meeting["id"], count, group):
            submit(client, code, n)
            n += 1
    return int(meeting["id"])


def test_a_hidden_group_cannot_be_had_as_the_whole_minus_the_shown_ones(
    client: TestClient, auth: dict[str, str]
) -> None:
    meeting_id = group_meeting(client, auth, {"leaders": 6, "committee": 5, "secretaries": 2})
    result = close(client, auth, meeting_id).json()["figures"]
    shown = {g["key"]: g["ballots"] for g in result["groups"] if g["score"] is not None}
    # secretaries (2) alone would be the total minus leaders and committee: committee, the smaller
    # shown group, is hidden with them, so the hidden ones hold 7 ballots together.
    assert shown == {"leaders": 6}
    hidden = result["ballots"] - sum(shown.values())
    assert hidden == 7 >= K
    # The attacker's subtraction gives the seven together (ballots 6-12), not the two secretaries (11, 12).
    whole = Fraction(result["total_sum"])
    leaders = Fraction(next(g for g in result["groups"] if g["key"] == "leaders")["score"]["exact"]) * 6
    template = default_template()
    total = {n: score_ballot(template, ballot(n), None).total for n in range(13)}
    assert whole - leaders == sum(total[n] for n in range(6, 13))
    assert whole - leaders != sum(total[n] for n in (11, 12))


def test_closing_again_must_add_k_ballots_or_an_administrators_reason(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting_id = group_meeting(client, auth, {"leaders": 5, "committee": 5})
    first = close(client, auth, meeting_id).json()
    assert {g["key"] for g in first["figures"]["groups"] if g["score"]} == {"leaders", "committee"}
    r = client.post(f"/api/v1/meetings/{meeting_id}/reopen", json={"reason": "一位评议人迟到"}, headers=auth)
    assert r.status_code == 200
    [late] = mint(client, auth, meeting_id, 1, "leaders")
    submit(client, late, 99, "迟到的意见")
    r = close(client, auth, meeting_id)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_reclose_gap")
    assert r.json()["detail"].startswith("上一版结果有 10 张票，现有 11 张，只多 1 张。")
    # A secretary may not accept the risk; an administrator may, in writing.
    with database.session() as session:
        from app import store

        store.create_user(session=session, actor="t", username="sec", display_name="书记", password=PASSWORD,
                          role="secretary", categories=["party_gov"])
    headers = {"X-CSRF-Token": sign_in(client, "sec")}
    refused = client.post(f"/meetings/{meeting_id}/close", data={"confirm": "1", "risk_reason": "会议要求"},
                          headers=headers)
    assert refused.status_code == 403
    client.cookies.clear()
    reason = "迟到的一位评议人坚持补投，已告知两版对比可知其所投内容"
    second = close(client, auth, meeting_id, risk_reason=reason)
    assert second.status_code == 200, second.text
    second_figures = second.json()["figures"]
    assert second_figures["ballots"] == 11
    # The leaders' figures moved by one ballot between the versions: no group is shown apart in v2.
    assert all(g["score"] is None and g["ballots"] is None for g in second_figures["groups"])
    with database.reading() as conn:
        detail = json.loads(conn.execute(text(
            "SELECT detail FROM audit_event WHERE action = 'meeting.close' ORDER BY id DESC LIMIT 1"
        )).scalar_one())
        if not database.is_sqlite:
            # The box was written anew in one transaction, so no transaction holds only the late ballot.
            groups = conn.execute(text("SELECT count(*) FROM ballot GROUP BY xmin::text")).scalars().all()
            assert groups == [11]
    assert detail["risk_reason"] == reason and detail["added"] == 1


def test_group_counts_are_not_shown_while_voting(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    with database.session() as session:
        from app import store

        store.create_user(session=session, actor="t", username="admin", display_name="管理员", password=PASSWORD,
                          role="admin")
    meeting_id = group_meeting(client, auth, {"leaders": 6, "committee": 5, "secretaries": 3})
    sign_in(client, "admin")
    page = client.get(f"/meetings/{meeting_id}").text
    row = re.search(r"<tr><td>基层党组织书记</td>.*?</tr>", page, re.S)
    assert row is not None and re.findall(r"<td>([^<]*)</td>", row.group(0))[2:5] == ["3", "—", "0"]
    assert "共已投票 14 张" in page
    assert close(client, auth, meeting_id).status_code == 200
    page = client.get(f"/meetings/{meeting_id}").text
    rows = {name: re.findall(r"<td>([^<]*)</td>", m)[2:5]
            for name, m in [(n, re.search(rf"<tr><td>{n}</td>.*?</tr>", page, re.S).group(0))  # type: ignore[union-attr]
                            for n in ("党组（党委）班子成员", "机关党委委员", "基层党组织书记")]}
    # After close: a group shown apart shows its count; the three secretaries, hidden, do not, nor
    # the committee, hidden with them so that the whole minus the leaders holds 8 ballots, not 3.
    assert rows == {"党组（党委）班子成员": ["6", "6", "0"], "机关党委委员": ["5", "—", "0"],
                    "基层党组织书记": ["3", "—", "0"]}

