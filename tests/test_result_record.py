"""The record of a result (issue 12): a digest that covers everything the result depends on, the unit
frozen at close, one counted review per unit and year, voiding and deleting meetings, every version
readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from app import recount
from app.cli import main
from app.db import Database
from app.figures import figures_for
from app.settings import Settings
from app.tables import AuditEvent, Meeting, WebhookDelivery
from tests.conftest import ALL_A, mint, open_meeting, settle
from tests.test_recount import answers, closed_readme_meeting, export


def cast(client: TestClient, auth: dict[str, str], meeting: int, ballots: list[dict[str, str]]) -> None:
    for code, ballot in zip(mint(client, auth, meeting, len(ballots)), ballots, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": ballot})
        assert r.status_code == 201, r.text
    settle(client)


def close(client: TestClient, auth: dict[str, str], meeting: int) -> dict[str, Any]:
    r = client.post(f"/api/v1/meetings/{meeting}/close", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def results(client: TestClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = client.get("/api/v1/results?year=2026", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["results"]  # type: ignore[no-any-return]


# ---- 1. the recount cannot be fooled -----------------------------------------------------------


def rewritten(file: recount.AuditFile, **rules: Any) -> recount.AuditFile:
    """The attack as it was seen: change the rules, and rewrite the figures to match them."""
    changed = file.rules.model_copy(update=rules)
    file = file.model_copy(update={"rules": changed})
    settings = recount.RulesRead(
        groups=json.dumps([g.model_dump() for g in changed.groups]), trim=changed.trim,
        component_weight=changed.component_weight, flagged_rule=changed.flagged_rule,
    )
    ballots = [recount.StoredBallot(b.group, dict(b.answers), b.comment) for b in file.ballots]
    figures, _ = figures_for(template=recount.parse_template(file.template), meeting=settings, ballots=ballots,
                             k=changed.k)
    return file.model_copy(update={"published": file.published.model_copy(update={"figures": figures})})


@pytest.mark.parametrize(
    "change",
    [
        {"trim": 0},
        {"component_weight": "0.5"},
        {"flagged_rule": "exclude"},
        {"k": 3},
    ],
    ids=["trim", "component_weight", "flagged_rule", "k"],
)
def test_a_file_whose_rules_were_rewritten_to_match_its_figures_is_refused(
    client: TestClient, auth: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
) -> None:
    meeting = closed_readme_meeting(client, auth)
    published = client.get(f"/api/v1/meetings/{meeting}/result", headers=auth).json()
    assert published["digest_format"] == 2
    file = recount.parse_audit(export(client, auth, meeting, "json", tmp_path).read_bytes())
    forged = rewritten(file, **change)
    if "trim" in change:
        # What was seen from outside: the forged file's own figures are consistent, 79.85 -> another score.
        assert forged.published.figures.score is not None and forged.published.figures.score.exact != "79.85"
    path = tmp_path / "forged.json"
    path.write_bytes(recount.to_json(forged))
    assert main(["recount", str(path), "--digest", published["digest"]]) == 2
    err = capsys.readouterr().err
    assert "文件与公布的摘要不符" in err and "The file does not match the published digest" in err
    with pytest.raises(recount.Invalid):
        recount.recount(forged)


@pytest.mark.parametrize("part", ["template", "unit", "earlier_versions"])
def test_a_file_with_another_template_unit_or_history_is_refused(
    client: TestClient, auth: dict[str, str], tmp_path: Path, part: str
) -> None:
    meeting = closed_readme_meeting(client, auth)
    data = json.loads(export(client, auth, meeting, "json", tmp_path).read_bytes())
    if part == "template":
        data["template"]["items"][0]["points"][0]["name"] += "（改）"
    elif part == "unit":
        data["meeting"]["unit_name"] = "另一个单位"
    else:
        data["rules"]["earlier_versions"] = [{"counts": [{"group": None, "ballots": 5}], "shown": []}]
    file = recount.parse_audit(json.dumps(data).encode())
    with pytest.raises(recount.Invalid) as refused:
        recount.recount(file)
    assert refused.value.problem.code == "audit_digest"


def test_the_untouched_file_still_reproduces_the_result(
    client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    meeting = closed_readme_meeting(client, auth)
    published = client.get(f"/api/v1/meetings/{meeting}/result", headers=auth).json()
    outcome = recount.recount(recount.parse_audit(export(client, auth, meeting, "csv", tmp_path).read_bytes()))
    assert (outcome.digest, outcome.matches) == (published["digest"], True)


def test_verify_uses_the_rules_frozen_at_close_and_sees_a_rule_changed_after(
    client: TestClient, auth: dict[str, str], database: Database, settings: Settings,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    meeting = closed_readme_meeting(client, auth)
    monkeypatch.setenv("ONSITE_BALLOT_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("ONSITE_BALLOT_SECRET_KEY", settings.secret())
    # K changed in the settings after close: the result was counted with K = 5 and verifies with it.
    monkeypatch.setenv("ONSITE_BALLOT_K_ANONYMITY", "7")
    assert main(["verify", str(meeting)]) == 0
    assert "MATCH" in capsys.readouterr().out
    with database.write.begin() as conn:
        conn.execute(update(Meeting).where(Meeting.id == meeting).values(trim=0))  # type: ignore[arg-type]
    assert main(["verify", str(meeting)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH: the ballots differ from those frozen at close" in out
    assert "recomputed figures differ" in out


# ---- 2. what a result says about its unit is frozen ----------------------------------------------


def test_renaming_or_moving_a_unit_after_close_changes_no_result(client: TestClient, auth: dict[str, str]) -> None:
    meeting = closed_readme_meeting(client, auth)
    before = results(client, auth)
    assert [(r["unit_code"], r["unit_name"], r["category"]) for r in before] == [("JL001", "测试单位", "party_gov")]
    r = client.patch("/api/v1/units/JL001", json={"name": "改名后的单位", "category": "central"}, headers=auth)
    assert r.status_code == 200, r.text
    after = results(client, auth)
    assert after == before
    assert client.get("/api/v1/results?category=party_gov", headers=auth).json()["results"] == before
    assert client.get("/api/v1/results?category=central", headers=auth).json()["results"] == []
    report = client.get(f"/api/v1/meetings/{meeting}/report", headers=auth)
    assert report.status_code == 200, report.text
    assert (report.json()["unit_name"], report.json()["category"]) == ("测试单位", "党政机关")


# ---- 3. one counted review per unit and year; voiding and deleting -------------------------------


def test_a_second_review_of_the_same_unit_and_year_counts_only_after_the_first_is_voided(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    first = open_meeting(client, auth)["id"]
    cast(client, auth, first, [ALL_A] * 6)
    close(client, auth, first)
    second = open_meeting(client, auth, date="2026-12-10")["id"]
    cast(client, auth, second, [answers("B")] * 5)
    r = client.post(f"/api/v1/meetings/{second}/close", headers=auth | {"Accept-Language": "en"})
    assert r.status_code == 409
    assert r.json()["code"] == "meeting_unit_year_counted"
    assert r.json()["detail"] == (
        f"JL001 测试单位 already has a counted review for 2026 (meeting {first}). A unit counts once a year;"
        f" to count this one instead, void meeting {first} first"
    )
    assert client.get(f"/api/v1/meetings/{second}", headers=auth).json()["state"] == "open"
    assert [r["meeting_id"] for r in results(client, auth)] == [first]

    # No reason, no voiding; nothing changes.
    r = client.post(f"/api/v1/meetings/{first}/void", json={"reason": "   "}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "meeting_void_reason_required")
    assert client.get(f"/api/v1/meetings/{first}", headers=auth).json()["state"] == "closed"

    r = client.post(f"/api/v1/meetings/{first}/void", json={"reason": "到会人数不足，党委决定另行组织"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "voided"
    assert results(client, auth) == []
    r = client.post(f"/api/v1/meetings/{first}/void", json={"reason": "再次作废"}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_transition")
    r = client.get(f"/api/v1/meetings/{first}/result", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_voided")
    assert client.get(f"/api/v1/meetings/{first}/result?version=1", headers=auth).json()["figures"]["ballots"] == 6

    second_result = close(client, auth, second)
    assert [(r["meeting_id"], r["ballots"]) for r in results(client, auth)] == [(second, 5)]
    composite = client.post("/api/v1/composite", headers=auth,
                            json={"unit_code": "JL001", "year": 2026, "inspection": "90", "key_tasks": "90"})
    assert composite.status_code == 200, composite.text
    assert (composite.json()["meeting_id"], composite.json()["digest"]) == (second, second_result["digest"])
    with database.session() as session:
        voided = session.scalars(select(AuditEvent).where(AuditEvent.action == "meeting.void")).one()
    assert (voided.meeting_id, json.loads(voided.detail or "{}")) == (
        first, {"reason": "到会人数不足，党委决定另行组织", "state": "closed"}
    )


def test_voiding_a_closed_meeting_tells_the_subscribers(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    r = client.post("/api/v1/webhooks", json={"url": "https://scoring.example/hook", "secret": "s" * 32},
                    headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["events"] == ["meeting.closed", "meeting.reopened", "meeting.voided"]
    meeting = open_meeting(client, auth)["id"]
    cast(client, auth, meeting, [ALL_A] * 5)
    close(client, auth, meeting)
    r = client.post(f"/api/v1/meetings/{meeting}/void", json={"reason": "重复录入"}, headers=auth)
    assert r.status_code == 200, r.text
    with database.session() as session:
        events = [(d.event, json.loads(d.payload)["result"]["meeting_id"]) for d in session.scalars(
            select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.event))]
    assert sorted(events) == [("meeting.closed", meeting), ("meeting.voided", meeting)]


def test_voiding_an_open_meeting_deletes_its_sealed_ballots_and_refuses_more(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)["id"]
    codes = mint(client, auth, meeting, 4)
    for code in codes[:3]:
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    settle(client)
    r = client.post(f"/api/v1/meetings/{meeting}/void", json={"reason": "会场设备故障"}, headers=auth)
    assert r.status_code == 200, r.text
    with database.reading() as conn:
        left = conn.execute(text("SELECT count(*) FROM sealed_ballot WHERE meeting_id = :m"), {"m": meeting})
        assert left.scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM meeting_seal WHERE meeting_id = :m"),
                            {"m": meeting}).scalar_one() == 0
    r = client.post("/api/v1/ballots", json={"token": codes[3], "answers": ALL_A})
    assert r.status_code in (404, 409), r.text
    r = client.post(f"/api/v1/meetings/{meeting}/tokens", json={"count": 1}, headers=auth)
    assert (r.status_code, r.json()["detail"]) == (409, "评议会已作废，不能再发放测评码")
    r = client.post(f"/api/v1/meetings/{meeting}/close", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_transition")


def test_a_draft_can_be_deleted_and_a_meeting_that_opened_cannot(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    opened = open_meeting(client, auth)["id"]
    r = client.post("/api/v1/meetings", headers=auth, json={
        "unit_code": "JL001", "year": 2026, "date": "2026-12-04", "title": "误建的评议会", "attendance": 20})
    draft = r.json()["id"]
    mint(client, auth, draft, 3)
    r = client.delete(f"/api/v1/meetings/{opened}", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_delete_not_draft")
    assert client.delete(f"/api/v1/meetings/{draft}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/meetings/{draft}", headers=auth).status_code == 404
    assert client.delete(f"/api/v1/meetings/{draft}", headers=auth).status_code == 404
    assert [m["id"] for m in client.get("/api/v1/meetings", headers=auth).json()] == [opened]
    with database.session() as session:
        deleted = session.scalars(select(AuditEvent).where(AuditEvent.action == "meeting.delete")).one()
        assert json.loads(deleted.detail or "{}") == {"id": draft, "unit": "JL001", "title": "误建的评议会",
                                                      "date": "2026-12-04"}
        assert session.execute(text("SELECT count(*) FROM ballot_token WHERE meeting_id = :m"),
                               {"m": draft}).scalar_one() == 0


# ---- 4. every version stays readable -------------------------------------------------------------


def test_every_version_of_a_result_stays_readable_with_its_digest(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)["id"]
    cast(client, auth, meeting, [ALL_A] * 5)
    v1 = close(client, auth, meeting)
    r = client.post(f"/api/v1/meetings/{meeting}/reopen", json={"reason": "补投"}, headers=auth)
    assert r.status_code == 200, r.text
    # While reopened, version 1 is still what was published.
    assert client.get(f"/api/v1/meetings/{meeting}/result?version=1", headers=auth).json() == v1 | {"versions": [1]}
    cast(client, auth, meeting, [answers("C")] * 5)
    v2 = close(client, auth, meeting)
    assert (v1["version"], v1["figures"]["ballots"], v2["version"], v2["figures"]["ballots"]) == (1, 5, 2, 10)
    assert v1["digest"] != v2["digest"]
    read1 = client.get(f"/api/v1/meetings/{meeting}/result?version=1", headers=auth).json()
    read2 = client.get(f"/api/v1/meetings/{meeting}/result?version=2", headers=auth).json()
    assert read1 == v1 | {"versions": [1, 2]}
    assert read2 == v2 == client.get(f"/api/v1/meetings/{meeting}/result", headers=auth).json()
    r = client.get(f"/api/v1/meetings/{meeting}/result?version=3", headers=auth | {"Accept-Language": "en"})
    assert (r.status_code, r.json()["detail"]) == (404, f"Meeting {meeting} has no result version 3")
    assert client.get(f"/api/v1/meetings/{meeting}/result?version=0", headers=auth).status_code == 422
