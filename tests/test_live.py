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
from tests.conftest import mint, open_meeting
from tests.test_access import PASSWORD, sign_in

GRADES = "ABCD"


def varied(n: int) -> dict[str, str]:
    """A different ballot for each n, so that every published step moves the score."""
    return {f"p{i:02d}": GRADES[(n * 7 + i * (n % 3 + 1)) % 4] for i in range(1, 20)}


def published(client: TestClient, auth: dict[str, str], meeting_id: int) -> tuple[int, Any]:
    tally = client.get(f"/api/v1/meetings/{meeting_id}/tally", headers=auth).json()
    return tally["published_at_count"], tally["figures"]


def test_published_figures_move_only_every_k_ballots_and_at_close(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 43)
    history: list[tuple[int, int, str | None]] = []  # (ballots submitted, published at, score)
    for n, code in enumerate(codes, start=1):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": varied(n), "comment": f"意见{n}"})
        assert r.status_code == 201
        count, figures = published(client, auth, meeting["id"])
        history.append((n, count, figures["score"]["exact"] if figures else None))
        assert figures is None or "comments" not in figures
    changes = [n for (n, _, score), (_, _, before) in zip(history, [(0, 0, None), *history], strict=False)
               if score != before]
    assert changes == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [count for _, count, _ in history] == [0] * 4 + [5 * (n // 5) for n in range(5, 44)]
    assert all(score is None for n, _, score in history if n < 5)
    at_40 = history[39][2]
    assert history[40][2] == history[41][2] == history[42][2] == at_40  # 41–43 publish nothing
    result = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    count, figures = published(client, auth, meeting["id"])
    assert count == 43
    assert figures == result["figures"]
    assert figures["score"]["exact"] != at_40


def test_live_figures_are_rendered_from_the_tally_kept_at_the_step_and_equal_a_recount(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    for n, code in enumerate(mint(client, auth, meeting["id"], 7), start=1):
        assert client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)}).status_code == 201
        if n == 5:
            count, at_five = published(client, auth, meeting["id"])
    with database.reading() as conn:
        row = conn.execute(text("SELECT published, published_sums, state FROM tally")).one()
    # The writer stored no figures: only counts and sums as they stood at the fifth ballot, and none
    # of the single ballots the running tally keeps for trimming (its "canonical" answers).
    assert row.published is None
    assert json.loads(row.published_sums)["ballots"] == 5
    assert '"canonical"' in row.state and '"canonical"' not in row.published_sums
    assert count == 5
    assert published(client, auth, meeting["id"]) == (5, at_five)  # ballots 6 and 7 publish nothing
    # Close a second meeting holding the same five ballots: its recount is what was shown live.
    other = open_meeting(client, auth, unit_code="JL002")
    for n, code in enumerate(mint(client, auth, other["id"], 5), start=1):
        assert client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)}).status_code == 201
    result = client.post(f"/api/v1/meetings/{other['id']}/close", headers=auth).json()
    assert at_five == result["figures"]
    assert at_five["score"]["exact"] == result["figures"]["score"]["exact"] != "0"


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
    codes = mint(client, auth, meeting["id"], 7)
    for n, code in enumerate(codes[:6], start=1):
        client.post("/api/v1/ballots", json={"token": code, "answers": varied(n)})
    first = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    client.post(f"/api/v1/meetings/{meeting['id']}/reopen", json={"reason": "一位评议人迟到"}, headers=auth)
    client.post("/api/v1/ballots", json={"token": codes[6], "answers": varied(7)})
    second = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    assert (first["version"], second["version"]) == (1, 2)
    assert (first["figures"]["ballots"], second["figures"]["ballots"]) == (6, 7)
    with database.reading() as conn:
        versions = conn.execute(text("SELECT version, ballot_count FROM result ORDER BY version")).all()
    assert [tuple(v) for v in versions] == [(1, 6), (2, 7)]


def test_dashboard_hides_scores_below_k_and_shows_comments_after_close(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    with database.session() as session:
        store.create_user(session=session, actor="t", username="wang", display_name="王", password=PASSWORD,
                          role="admin")
    sign_in(client, "wang")
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 6)
    for n, code in enumerate(codes[:4], start=1):
        client.post("/api/v1/ballots", json={"token": code, "answers": varied(n), "comment": f"第{n}条意见"})
    page = client.get(f"/meetings/{meeting['id']}/live").text
    assert "票数达到 5 张后才显示得分（下一次更新：第 5 张）" in page
    assert 'data-live="ballots_counted">4<' in page
    assert "第1条意见" not in page
    client.post("/api/v1/ballots", json={"token": codes[4], "answers": varied(5)})
    fragment = client.get(f"/meetings/{meeting['id']}/live/fragment").text
    score = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["figures"]["score"]["rounded"]
    assert f"<b>{score}</b>" in fragment
    assert 'aria-label="各测评要点平均得分"' in fragment
    assert "第1条意见" not in fragment
    client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth)
    closed = client.get(f"/meetings/{meeting['id']}/live").text
    assert "意见建议（4 条，顺序已随机打乱）" in closed
    assert all(f"第{n}条意见" in closed for n in range(1, 5))
    projector = client.get(f"/meetings/{meeting['id']}/projector").text
    assert f"<b>{score}</b>" not in projector and 'data-live="ballots_counted">5<' in projector


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
