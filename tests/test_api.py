"""The JSON API end to end, on each database backend."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from app.db import Database
from app.scoring import canonical_json
from app.tables import AuditEvent, Ballot, BallotToken, SealedBallot
from tests.conftest import ALL_A, mint, open_meeting, settle


def answers(*grades: str) -> dict[str, str]:
    """19 answers from a short pattern, repeated: answers("A", "B") -> A, B, A, B, …"""
    return {f"p{i:02d}": grades[(i - 1) % len(grades)] for i in range(1, 20)}


def cast(client: TestClient, codes: list[str], *patterns: tuple[str, ...]) -> None:
    for code, pattern in zip(codes, patterns, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": answers(*pattern)})
        assert r.status_code == 201, r.text


def db_counts(database: Database) -> tuple[int, int, int]:
    """Ballots kept (in the box or still sealed), codes spent, codes minted."""
    with database.reading() as conn:
        ballots = conn.execute(select(func.count()).select_from(Ballot)).scalar_one()
        ballots += conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one()
        used = conn.execute(select(func.count()).select_from(BallotToken).where(BallotToken.used.is_(True))).scalar_one()  # type: ignore[attr-defined]
        tokens = conn.execute(select(func.count()).select_from(BallotToken)).scalar_one()
    return ballots, used, tokens


def test_units_need_an_api_key(client: TestClient) -> None:
    r = client.get("/api/v1/units")
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"
    r = client.get("/api/v1/units", headers={"Authorization": "Bearer ob_wrong"})
    assert r.status_code == 401


def test_create_and_list_units(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/api/v1/units", json={"code": "JL001", "name": "省直机关工委", "category": "party_gov"}, headers=auth)
    assert r.status_code == 201
    assert r.json() == {"code": "JL001", "name": "省直机关工委", "category": "party_gov", "category_name": "党政机关",
                        "reviewed_years": []}
    r = client.post("/api/v1/units", json={"code": "JL001", "name": "重复", "category": "party_gov"}, headers=auth)
    assert r.status_code == 409
    assert r.json()["detail"] == "单位编码 JL001 已存在"
    r = client.post("/api/v1/units", json={"code": "JL002", "name": "x", "category": "nope"}, headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"] == "单位类别 nope 无效，可选：party_gov/central/mass_org/enterprise"
    assert [u["code"] for u in client.get("/api/v1/units", headers=auth).json()] == ["JL001"]


def test_csv_import_all_or_nothing(client: TestClient, auth: dict[str, str], database: Database) -> None:
    bad = "\ufeffcode,name,category\r\nA1,甲单位,party_gov\r\nA2,,central\r\nA3,丙单位,unknown\r\n".encode()
    r = client.post("/api/v1/units/import", content=bad, headers={**auth, "Content-Type": "text/csv"})
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert len(problems) == 2
    assert problems[0].startswith("第 3 行：")
    assert problems[1].startswith("第 4 行：单位类别 unknown 无效")
    assert client.get("/api/v1/units", headers=auth).json() == []
    good = "\ufeffcode,name,category\r\nA1,甲单位,party_gov\r\nA2,乙单位,central\r\n\r\n".encode()
    r = client.post("/api/v1/units/import", content=good, headers={**auth, "Content-Type": "text/csv"})
    assert r.status_code == 201
    assert r.json()["imported"] == 2
    assert [u["name"] for u in client.get("/api/v1/units", headers=auth).json()] == ["甲单位", "乙单位"]


def test_default_template_is_served(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/api/v1/templates", headers=auth)
    assert r.json() == [{"id": "default", "version": 1, "name": "党建工作述职评议测评票", "versions": [1]}]
    body = client.get("/api/v1/templates/default", headers=auth).json()
    points = [p for item in body["items"] for p in item["points"]]
    assert [p["id"] for p in points] == [f"p{i:02d}" for i in range(1, 20)]
    assert sum(Decimal(p["max"]) for p in points) == 100


def test_template_versions_and_meeting_keeps_its_version(client: TestClient, auth: dict[str, str]) -> None:
    template = client.get("/api/v1/templates/default", headers=auth).json()
    template["name"] = "第二版"
    template["version"] = 2
    r = client.post("/api/v1/templates", json=template, headers=auth)
    assert r.status_code == 201
    assert r.json()["version"] == 2
    meeting = open_meeting(client, auth, template_version=1)
    assert meeting["template_version"] == 1
    template["version"] = 3
    template["items"][0]["points"][0]["max"] = "7"
    r = client.post("/api/v1/templates", json=template, headers=auth)
    assert r.status_code == 422
    assert r.json()["code"] == "template_max_sum"
    assert r.json()["detail"] == "各测评要点满分之和应为 100，现为 101"
    got = client.get(f"/api/v1/meetings/{meeting['id']}", headers=auth).json()
    assert (got["template_id"], got["template_version"]) == ("default", 1)


def test_meeting_defaults(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    assert meeting["state"] == "open"
    assert meeting["trim"] == 1
    assert meeting["component_weight"] == "0.4"
    assert [(g["key"], g["name"], g["weight"]) for g in meeting["groups"]] == [
        ("leaders", "党组（党委）班子成员", None),
        ("committee", "机关党委委员", None),
        ("secretaries", "基层党组织书记", None),
        ("representatives", "党员群众代表", None),
    ]


def test_weights_must_sum_to_100(client: TestClient, auth: dict[str, str]) -> None:
    client.post("/api/v1/units", json={"code": "JL001", "name": "单位", "category": "party_gov"}, headers=auth)
    base = {"unit_code": "JL001", "year": 2026, "date": "2026-12-03", "title": "t", "mode": "cards", "attendance": 20}
    groups = [{"key": "a", "name": "甲", "weight": "60"}, {"key": "b", "name": "乙", "weight": "30"}]
    r = client.post("/api/v1/meetings", json={**base, "groups": groups}, headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"] == "各类评议人权重之和应为 100%，现为 90%"
    groups[1]["weight"] = None  # type: ignore[assignment]
    r = client.post("/api/v1/meetings", json={**base, "groups": groups}, headers=auth)
    assert r.json()["code"] == "meeting_weights_partial"


def test_lifecycle_and_illegal_transitions(client: TestClient, auth: dict[str, str], database: Database) -> None:
    client.post("/api/v1/units", json={"code": "JL001", "name": "单位", "category": "party_gov"}, headers=auth)
    body = {"unit_code": "JL001", "year": 2026, "date": "2026-12-03", "title": "t", "mode": "cards", "attendance": 20}
    meeting_id = client.post("/api/v1/meetings", json=body, headers=auth).json()["id"]
    r = client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth)
    assert r.status_code == 409
    assert r.json()["detail"] == "评议会当前状态为“未开始”，不能执行“结束”"
    assert client.get(f"/api/v1/meetings/{meeting_id}/result", headers=auth).status_code == 409
    assert client.post(f"/api/v1/meetings/{meeting_id}/open", headers=auth).status_code == 200
    assert client.post(f"/api/v1/meetings/{meeting_id}/open", headers=auth).status_code == 409
    r = client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_too_few_ballots")
    assert r.json()["detail"] == (
        "本评议会只有 0 张测评票，少于 5 张时结束会公开这几张票的内容，不能结束。请继续收票，或作废本次评议会"
    )
    cast(client, mint(client, auth, meeting_id, 4), *[("A",)] * 4)
    r = client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth, json={"risk_reason": "只来了四个人"})
    assert (r.status_code, r.json()["code"]) == (409, "meeting_too_few_ballots")  # no reason lets four through
    cast(client, mint(client, auth, meeting_id, 1), ("B",))
    assert client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth).status_code == 200
    r = client.post(f"/api/v1/meetings/{meeting_id}/reopen", json={"reason": "   "}, headers=auth)
    assert r.status_code == 422
    r = client.post(f"/api/v1/meetings/{meeting_id}/reopen", json={"reason": "计票人员误操作"}, headers=auth)
    assert r.status_code == 200
    assert r.json()["state"] == "open"
    with database.reading() as conn:
        events = conn.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.detail).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
    assert [(a, b) for a, b, _ in events if b != "tokens.mint"][-5:] == [
        ("api:tests", "unit.create"), ("api:tests", "meeting.create"), ("api:tests", "meeting.open"),
        ("api:tests", "meeting.close"), ("api:tests", "meeting.reopen"),
    ]
    assert json.loads(events[-1][2]) == {"reason": "计票人员误操作"}


def test_ten_ballots_to_a_hand_checked_result(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 10)
    # Totals: all A = 100; all B = 80; all C = 50; all D = 0; A/B alternating = 91.0 (see below)
    patterns = [("A",), ("B",), ("C",), ("D",), ("A", "B"), ("A", "B"), ("B", "C"), ("A", "C"), ("B",), ("A",)]
    for code, pattern in zip(codes, patterns, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": answers(*pattern)})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "counted"
    r = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth)
    assert r.status_code == 200
    figures = r.json()["figures"]
    # A,B alternating over p01..p19: odd points A (full), even points B (0.8 of max).
    # odd maxima p01,p03,…,p19 = 6+5+6+4+4+5+5+5+7+6 = 53; even = 47; 53 + 0.8*47 = 90.6
    # B,C alternating: 0.8*53 + 0.5*47 = 42.4 + 23.5 = 65.9; A,C: 53 + 23.5 = 76.5
    # totals: 100, 80, 50, 0, 90.6, 90.6, 65.9, 76.5, 80, 100 -> drop one 100 and the 0
    # kept: 80+50+90.6+90.6+65.9+76.5+80+100 = 633.6 over 8 = 79.2; 40% = 31.68
    assert figures["ballots"] == 10
    assert figures["counted"] == 8
    assert figures["dropped"] == 2
    assert figures["flagged"] == 6  # all-A twice, all-B twice, all-C, all-D
    assert figures["score"] == {"rounded": "79.20", "exact": "79.2"}
    assert figures["component"] == {"rounded": "31.68", "exact": "31.68"}
    assert figures["total_sum"] == "633.6"
    assert sum(Decimal(item["average"]["exact"]) for item in figures["items"]) == Decimal("79.2")
    again = client.get(f"/api/v1/meetings/{meeting['id']}/result", headers=auth).json()
    assert again["figures"] == figures
    assert len(again["digest"]) == 64
    assert db_counts(database) == (10, 10, 10)


def test_a_spent_code_answers_already_counted_whatever_comes_with_it(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """No receipt: the answer to a spent code proves nothing about the ballot it counted."""
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    body = {"token": code, "answers": ALL_A, "comment": "很好"}
    assert client.post("/api/v1/ballots", json=body).status_code == 201
    lower = code.lower()[:3] + "-" + code.lower()[3:]  # the typed form of the same code
    probes = [
        body,  # a retry
        {**body, "token": lower},
        {**body, "answers": answers("B")},  # different answers
        {**body, "comment": "不好"},  # a different comment, as a coercer might dictate
        {"token": code, "answers": answers("D")},
        {"token": code, "answers": {"p01": "Z"}},  # answers that could never have been cast
        {"token": code, "answers": {}, "comment": "x" * 600},  # a comment longer than any allowed
    ]
    replies = [client.post("/api/v1/ballots", json=probe) for probe in probes]
    assert {(r.status_code, r.text) for r in replies} == {
        (200, '{"status":"already_counted","message":"这张测评票此前已经计入，无需再次提交。"}')
    }
    assert db_counts(database) == (1, 1, 1)
    # Nothing kept anywhere that could tell the cast answers from others: no column holds a
    # function of the answers next to the code.
    with database.reading() as conn:
        ledger = repr(conn.execute(text("SELECT * FROM ballot_token")).all())
    for text_of_ballot in (canonical_json(ALL_A), "很好"):
        assert text_of_ballot not in ledger


def _state(database: Database) -> list[Any]:
    with database.reading() as conn:
        return [
            conn.execute(text("SELECT hash, used FROM ballot_token ORDER BY hash")).all(),
            conn.execute(text("SELECT id, answers FROM ballot ORDER BY id")).all(),
            conn.execute(text("SELECT id, sealed FROM sealed_ballot ORDER BY id")).all(),
            conn.execute(text("SELECT meeting_id, ballots, sealed FROM turnout ORDER BY meeting_id")).all(),
            conn.execute(text("SELECT ballot_count, published_count FROM tally ORDER BY meeting_id")).all(),
        ]


def test_bad_ballots_are_named_and_change_nothing(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    other = open_meeting(client, auth, unit_code="JL002")
    [code] = mint(client, auth, meeting["id"], 1)
    [spent] = mint(client, auth, other["id"], 1)
    assert client.post("/api/v1/ballots", json={"token": spent, "answers": ALL_A}).status_code == 201
    before = _state(database)
    missing = {k: v for k, v in ALL_A.items() if k != "p07"}
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"token": code, "answers": {**ALL_A, "p99": "A"}}, 422, "ballot_unknown_point", "测评要点 p99 不在本测评票上"),
        ({"token": code, "answers": missing}, 422, "ballot_missing_point", "测评要点 p07 尚未打分"),
        ({"token": code, "answers": {**ALL_A, "p03": "E"}}, 422, "ballot_unknown_grade", "测评要点 p03 的等级 E 无效，可选：A/B/C/D"),
        ({"token": "K7MQ2X9PAR", "answers": ALL_A}, 404, "token_unknown", "无法识别这个测评码，请核对后重新输入"),
        ({"token": "短码", "answers": ALL_A}, 404, "token_unknown", "无法识别这个测评码，请核对后重新输入"),
        ({"token": code, "answers": ALL_A, "comment": "\x00"}, 422, "text_control", "body.comment 含有控制字符（如 NUL 或单行文字中的换行），请删除后再提交"),
        ({"token": code, "answers": ALL_A, "comment": "长" * 501}, 422, "ballot_comment_too_long", "意见建议最多 500 字，现为 501 字"),
        ({"token": code, "answers": ALL_A, "extra": 1}, 422, "request_invalid", "请求内容有误：body.extra 不是可用的字段"),
    ]
    for body, status, code_, detail in cases:
        r = client.post("/api/v1/ballots", json=body)
        assert (r.status_code, r.json()["code"], r.json()["detail"]) == (status, code_, detail), body
    r = client.post("/api/v1/ballots", content=b'{"token": ', headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"], r.json()["detail"]) == (
        422, "request_json", "请求内容不是有效的 JSON（第 11 个字符处有误）")
    r = client.post("/api/v1/ballots", content=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"] == "请求内容过大（上限 65536 字节）"
    assert _state(database) == before


def test_numbers_template(client: TestClient, auth: dict[str, str], database: Database) -> None:
    template = client.get("/api/v1/templates/default", headers=auth).json()
    template.update(id="numeric", version=1, input="numbers")
    assert client.post("/api/v1/templates", json=template, headers=auth).status_code == 201
    meeting = open_meeting(client, auth, template_id="numeric")
    [code, code2] = mint(client, auth, meeting["id"], 2)
    full = {p["id"]: p["max"] for item in template["items"] for p in item["points"]}
    r = client.post("/api/v1/ballots", json={"token": code, "answers": {**full, "p01": "6.5"}})
    assert (r.status_code, r.json()["detail"]) == (422, "测评要点 p01 的分数应在 0 到 6 之间，收到 6.5")
    r = client.post("/api/v1/ballots", json={"token": code, "answers": {**full, "p01": 5.25}})
    assert (r.status_code, r.json()["detail"]) == (422, "测评要点 p01 的分数应为 0.5 的整数倍，收到 5.25")
    assert client.post("/api/v1/ballots", json={"token": code, "answers": {**full, "p01": 5.5}}).status_code == 201
    for other in [code2, *mint(client, auth, meeting["id"], 3)]:
        assert client.post("/api/v1/ballots", json={"token": other, "answers": full}).status_code == 201
    result = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).json()
    # (99.5 + 4 × 100) / 5 = 99.9 (five ballots: no trim)
    assert result["figures"]["score"] == {"rounded": "99.90", "exact": "99.9"}
    assert result["figures"]["component"] == {"rounded": "39.96", "exact": "39.96"}


def test_meeting_not_open_takes_no_ballot(client: TestClient, auth: dict[str, str], database: Database) -> None:
    client.post("/api/v1/units", json={"code": "JL001", "name": "单位", "category": "party_gov"}, headers=auth)
    body = {"unit_code": "JL001", "year": 2026, "date": "2026-12-03", "title": "t", "mode": "cards", "attendance": 20}
    meeting_id = client.post("/api/v1/meetings", json=body, headers=auth).json()["id"]
    [code] = mint(client, auth, meeting_id, 1)
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A})
    assert (r.status_code, r.json()["detail"]) == (409, "评议会当前状态为“未开始”，不接受投票")
    assert db_counts(database) == (0, 0, 1)


def test_token_minting_answers_codes_once(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    r = client.post(f"/api/v1/meetings/{meeting['id']}/tokens", json={"count": 3, "group": "leaders"}, headers=auth)
    tokens = r.json()["tokens"]
    assert len(tokens) == 3
    for token in tokens:
        assert len(token["code"]) == 10
        assert token["url"] == f"http://testserver/b/{token['code']}"
        assert token["group"] == "leaders"
    with database.reading() as conn:
        stored = conn.execute(text("SELECT * FROM ballot_token")).all()
    dump = repr(stored)
    assert all(token["code"] not in dump for token in tokens)
    r = client.post(f"/api/v1/meetings/{meeting['id']}/tokens", json={"count": 1, "group": "nobody"}, headers=auth)
    assert (r.status_code, r.json()["detail"]) == (422, "本评议会没有评议人类别 nobody")


def test_tally_moves_only_when_a_group_of_k_is_mixed(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 16)
    steps = []
    for n, code in enumerate(codes, start=1):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": answers("A") if n % 2 else answers("B")})
        assert r.status_code == 201
        settle(client)
        tally = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()
        assert (tally["ballots_counted"], tally["tokens_issued"]) == (n, 16)
        steps.append(tally["published_at_count"])
        if tally["figures"] is not None:
            # The figures are those of the ballots in the box: a recount of exactly what was mixed.
            with database.reading() as conn:
                totals = sorted(Decimal(t) for t in conn.execute(select(Ballot.total)).scalars())
            assert len(totals) == tally["published_at_count"] == tally["figures"]["ballots"]
            kept = totals[1:-1] if len(totals) > 5 else totals
            assert Decimal(tally["figures"]["score"]["exact"]) == sum(kept) / len(kept)
            assert all(g["score"] is None and g["ballots"] is None for g in tally["figures"]["groups"])
    # 2K = 10 sealed: all but K are mixed (5); five more make 10 sealed again: 5 more are mixed.
    assert steps == [0] * 9 + [5] * 5 + [10] * 2
    r = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth)
    tally = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()
    # 16 ballots: 8 × 100 + 8 × 80, drop one 100 and one 80 -> (700 + 560) / 14 = 90
    assert (tally["published_at_count"], tally["figures"]["score"]["exact"]) == (16, "90")


def test_a_retry_after_close_is_already_counted(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    codes = mint(client, auth, meeting["id"], 5)
    cast(client, codes, *[("A",)] * 5)
    assert client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).status_code == 200
    r = client.post("/api/v1/ballots", json={"token": codes[0], "answers": answers("C")})
    assert (r.status_code, r.json()["status"]) == (200, "already_counted")


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/api/v1/units", "/api/v1/meetings", "/api/v1/ballots", "/api/v1/meetings/{meeting_id}/tally",
            "/api/v1/meetings/{meeting_id}/result", "/api/v1/meetings/{meeting_id}/tokens"} <= paths
    example = spec["components"]["schemas"]["MeetingCreate"]["examples"][0]
    assert example["unit_code"] == "JL001"


def test_health_and_docs_are_self_hosted(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    page = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
