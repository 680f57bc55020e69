"""Live tally: figures move only in steps of K and at close; verify catches a changed ballot; pages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app import cli, store
from app.db import Database
from app.figures import StoredBallot
from tests.conftest import mint, open_meeting, settle
from tests.test_access import PASSWORD, sign_in

GRADES = "ABCD"


def varied(n: int) -> dict[str, str]:
    """A different ballot for each n, so that every published step moves the score."""
    return {f"p{i:02d}": GRADES[(n * 7 + i * (n % 3 + 1)) % 4] for i in range(1, 20)}


def kept_box(database: Database, meeting_id: int) -> list[StoredBallot]:
    with database.reading() as conn:
        return store.meeting_ballots(conn=conn, meeting_id=meeting_id)


def published(client: TestClient, auth: dict[str, str], meeting_id: int) -> tuple[int, Any]:
    tally = client.get(f"/api/v1/meetings/{meeting_id}/tally", headers=auth).json()
    return tally["published_at_count"], tally["figures"]


def test_published_figures_move_only_when_a_group_is_mixed_and_at_close(
    client: TestClient, auth: dict[str, str]
) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 43)
    history: list[tuple[int, int, str | None]] = []  # (ballots submitted, published at, score)
    for n, code in enumerate(codes, start=1):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": varied(n), "comment": f"意见{n}"})
        assert r.status_code == 201
        settle(client)
        count, figures = published(client, auth, meeting["id"])
        history.append((n, count, figures["score"]["exact"] if figures else None))
        assert figures is None or "comments" not in figures
    # A group is mixed once 2K = 10 wait sealed, and takes all but K of them: 5 at the 10th ballot,
    # 5 more at each fifth ballot after it; K always wait for the next group.
    assert [count for _, count, _ in history] == [0] * 9 + [5 * (n // 5 - 1) for n in range(10, 44)]
    assert all(score is None for n, _, score in history if n < 10)
    # The score moves only when the count does.
    for (_, count, score), (_, before_count, before) in zip(history[1:], history, strict=False):
        assert score == before or count != before_count
    result = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    count, figures = published(client, auth, meeting["id"])
    assert count == 43 and count - history[-1][1] >= 5  # the close adds the K and more kept back
    assert figures == result["figures"]


def test_live_figures_are_rendered_from_the_tally_kept_at_the_step_and_equal_a_recount(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    for n, code in enumerate(mint(client, auth, meeting["id"], 12), start=1):
        assert client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)}).status_code == 201
        settle(client)
        if n == 10:
            count, at_ten = published(client, auth, meeting["id"])
    with database.reading() as conn:
        row = conn.execute(text("SELECT published, published_sums, state FROM tally")).one()
    mixed = kept_box(database, meeting["id"])
    # The mixer stored no figures: only counts and sums as they stood after the group, and none
    # of the single ballots the running tally keeps for trimming (its "canonical" answers).
    assert row.published is None
    assert json.loads(row.published_sums)["ballots"] == 5 == len(mixed)
    assert '"canonical"' in row.state and '"canonical"' not in row.published_sums
    assert count == 5
    assert published(client, auth, meeting["id"]) == (5, at_ten)  # ballots 11 and 12 publish nothing
    # Close a second meeting holding the five ballots that were mixed: its recount is what was shown live.
    other = open_meeting(client, auth, unit_code="JL002")
    for ballot, code in zip(mixed, mint(client, auth, other["id"], 5), strict=True):
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ballot.answers}).status_code == 201
    result = client.post(f"/api/v1/meetings/{other['id']}/close", headers=auth).json()
    assert at_ten == result["figures"]
    assert at_ten["score"]["exact"] == result["figures"]["score"]["exact"] != "0"


def test_verify_detects_a_ballot_changed_after_close(
    client: TestClient, auth: dict[str, str], database: Database, settings: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    meeting = open_meeting(client, auth)
    # Five ballots: none is trimmed, so any changed answer changes the figures too.
    for n, code in enumerate(mint(client, auth, meeting["id"], 5), start=1):
        client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)})
    client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth)
    monkeypatch.setenv("ONSITE_BALLOT_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(settings.data_dir))
    assert cli.main(["verify", str(meeting["id"])]) == 0
    assert "一致：票据与结果自结束后未被改动" in capsys.readouterr().out
    with database.writing() as conn:
        ballot_id, answers = conn.execute(text("SELECT id, answers FROM ballot ORDER BY id LIMIT 1")).one()
        changed = re.sub(r'"p01":"[ABCD]"', '"p01":"D"' if '"p01":"A"' in answers else '"p01":"A"', answers)
        conn.execute(text("UPDATE ballot SET answers = :a WHERE id = :id"), {"a": changed, "id": ballot_id})
    assert cli.main(["verify", str(meeting["id"])]) == 1
    out = capsys.readouterr().out
    assert "不一致：票据与结束时不同" in out
    assert "不一致：重新计算的结果不同" in out


def test_reclose_makes_a_new_result_version(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 11)
    for n, code in enumerate(codes[:6], start=1):
        client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)})
    first = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    client.post(f"/api/v1/meetings/{meeting['id']}/reopen", json={"reason": "五位评议人迟到"}, headers=auth)
    for n, code in enumerate(codes[6:], start=7):
        client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)})
    second = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    assert (first["version"], second["version"]) == (1, 2)
    assert (first["figures"]["ballots"], second["figures"]["ballots"]) == (6, 11)
    with database.reading() as conn:
        versions = conn.execute(text("SELECT version, ballot_count FROM result ORDER BY version")).all()
    assert [tuple(v) for v in versions] == [(1, 6), (2, 11)]


def test_dashboard_hides_scores_below_k_and_shows_comments_after_close(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    with database.session() as session:
        store.create_user(session=session, actor="t", username="wang", display_name="王", password=PASSWORD,
                          role="admin")
    sign_in(client, "wang")
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 10)
    for n, code in enumerate(codes[:9], start=1):
        client.post("/api/v1/ballots", json={"token": code, "answers": varied(n), "comment": f"第{n}条意见"})
    settle(client)
    page = client.get(f"/meetings/{meeting['id']}/live").text
    assert "已投票 9 张；至少 10 张票投出后才显示得分。" in page
    assert 'data-live="ballots_counted">9<' in page
    assert "第1条意见" not in page
    client.post("/api/v1/ballots", json={"token": codes[9], "answers": varied(10)})
    settle(client)
    fragment = client.get(f"/meetings/{meeting['id']}/live/fragment").text
    assert "已计入得分的票数（已投票 10 张；其余的凑满一组后计入）" in fragment
    assert "分类别得分在评议会结束后显示" in fragment
    score = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["figures"]["score"]["rounded"]
    assert f"<b>{score}</b>" in fragment
    assert 'aria-label="各测评要点平均得分"' in fragment
    assert "第1条意见" not in fragment
    # The projector shows no score while voting goes on, even when asked for one.
    open_projector = client.get(f"/meetings/{meeting['id']}/projector?scores=1").text
    assert f"<b>{score}</b>" not in open_projector and 'id="projector-score"' not in open_projector
    client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth)
    closed = client.get(f"/meetings/{meeting['id']}/live").text
    assert "意见建议（9 条，顺序已随机打乱）" in closed
    assert all(f"第{n}条意见" in closed for n in range(1, 10))
    final = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["figures"]["score"]["rounded"]
    projector = client.get(f"/meetings/{meeting['id']}/projector").text
    assert f"<b>{final}</b>" not in projector and 'data-live="ballots_counted">10<' in projector
    assert f"<b>{final}</b>" in client.get(f"/meetings/{meeting['id']}/projector?scores=1").text


def test_feedback_report_compares_with_peers_only_from_k_of_them(client: TestClient, auth: dict[str, str]) -> None:
    # Five meetings of one category and year, five identical ballots each:
    # all A (100), all B (80), all C (50), all D (0), and all A but p01–p04 D (100 − 20 = 80).
    patterns = [{}, {"*": "B"}, {"*": "C"}, {"*": "D"}, {"p01": "D", "p02": "D", "p03": "D", "p04": "D"}]
    ids = []
    for n, pattern in enumerate(patterns, start=1):
        meeting = open_meeting(client, auth, unit_code=f"JL00{n}")
        answers = {f"p{i:02d}": pattern.get(f"p{i:02d}", pattern.get("*", "A")) for i in range(1, 20)}
        for code in mint(client, auth, meeting["id"], 5):
            assert client.post("/api/v1/ballots", json={"token": code, "answers": answers}).status_code == 201
        ids.append(meeting["id"])
    for meeting_id in ids[:4]:
        client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth)
    early = client.get(f"/api/v1/meetings/{ids[0]}/report", headers=auth).json()
    assert (early["peers"], early["score_comparison"], early["items"][0]["comparison"]) == (4, None, None)
    assert client.get(f"/api/v1/meetings/{ids[4]}/report", headers=auth).status_code == 409

    client.post(f"/api/v1/meetings/{ids[4]}/close", headers=auth)
    report = client.get(f"/api/v1/meetings/{ids[4]}/report", headers=auth).json()
    assert report["score"]["exact"] == "80"
    # scores 100, 80, 50, 0, 80: mean 62; one higher than 80, so rank 2 of 5
    assert report["score_comparison"] == {"peer_average": {"rounded": "62.00", "exact": "62"}, "rank": 2, "of": 5}
    assert report["weakest"] == ["p01", "p02", "p03"]
    p01 = report["items"][0]["points"][0]
    # p01 (max 6): 6, 4.8, 3, 0, 0 -> mean 2.76; three peers above 0 -> rank 4
    assert (p01["average"]["exact"], p01["share"], p01["weakest"], p01["below_peers"]) == ("0", "0.0", True, True)
    assert p01["comparison"] == {"peer_average": {"rounded": "2.76", "exact": "2.76"}, "rank": 4, "of": 5}
    item1 = report["items"][0]
    assert item1["comparison"] == {"peer_average": {"rounded": "9.20", "exact": "9.2"}, "rank": 4, "of": 5}
    assert report["items"][1]["points"][0]["below_peers"] is False  # p05: 6 against a mean of 3.66
    page = client.get(f"/meetings/{ids[4]}/report", headers=auth).text
    assert "▼ 1 履行第一责任人职责" in page  # numbered as on the ballot (issue #14, point 9)
    assert "2 / 5" in page
    # A short 核验码 for people, not the 64-digit digest; no command lines (issue #14, point 9).
    result = client.get(f"/api/v1/meetings/{ids[4]}/result", headers=auth).json()
    digest = result["digest"]
    code = "-".join(digest[i:i + 4].upper() for i in (0, 4, 8))
    assert report["verification_code"] == code
    assert [p["number"] for i in report["items"] for p in i["points"]] == list(range(1, 20))
    assert f"核验码 {code}" in page
    assert digest not in page and "onsite-ballot verify" not in page and re.search(r"\bp\d\d\b", page) is None
