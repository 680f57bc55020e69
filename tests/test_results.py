"""The results export (JSON, CSV, XLSX), its auth, filters and cursors; the overview; the composite grade."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from fractions import Fraction
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app import store
from app.composite import composite
from app.db import Database
from app.errors import Conflict, Invalid
from app.export import decode_cursor, encode_cursor
from app.overview import ranks, window
from app.schemas import RESULT_EXAMPLE, CompositeBody, CompositeWeights, ResultRecord
from app.tables import ApiKey
from tests.conftest import mint, open_meeting

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def answers(grade: str, **overrides: str) -> dict[str, str]:
    return {**{f"p{i:02d}": grade for i in range(1, 20)}, **overrides}


def cast(client: TestClient, auth: dict[str, str], meeting_id: int, ballots: list[dict[str, str]],
         group: str | None = None) -> None:
    for code, ballot in zip(mint(client, auth, meeting_id, len(ballots), group), ballots, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": ballot})
        assert r.status_code == 201, r.text


def close(client: TestClient, auth: dict[str, str], meeting_id: int) -> dict[str, Any]:
    r = client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def add_unit(client: TestClient, auth: dict[str, str], code: str, name: str, category: str) -> None:
    r = client.post("/api/v1/units", json={"code": code, "name": name, "category": category}, headers=auth)
    assert r.status_code == 201, r.text


def three_meetings(client: TestClient, auth: dict[str, str]) -> list[int]:
    """Closed in this order: JL001 79.85, JL002 280/3, ZZ001 100 (one group of 6)."""
    add_unit(client, auth, "JL001", "省直机关事务管理局", "party_gov")
    add_unit(client, auth, "JL002", "省统计局", "party_gov")
    add_unit(client, auth, "ZZ001", "中直某单位", "central")
    first = open_meeting(client, auth, unit_code="JL001")["id"]
    # The README's hand count: 3 × 100, 3 × 80, 2 × 50, 98.8, 0 -> drop 100 and 0 -> 638.8 / 8
    cast(client, auth, first, [answers("A")] * 3 + [answers("B")] * 3 + [answers("C")] * 2
         + [answers("A", p01="B"), answers("D")])
    close(client, auth, first)
    second = open_meeting(client, auth, unit_code="JL002")["id"]
    # 5 × 100 and 3 × 80: drop one of each -> (4 × 100 + 2 × 80) / 6 = 280 / 3
    cast(client, auth, second, [answers("A")] * 5 + [answers("B")] * 3)
    close(client, auth, second)
    third = open_meeting(client, auth, unit_code="ZZ001", date="2026-12-05")["id"]
    # 5 × 100 and one 50, all representatives: drop 100 and 50 -> 100
    cast(client, auth, third, [answers("A")] * 5 + [answers("C")], group="representatives")
    close(client, auth, third)
    return [first, second, third]


def export_key(database: Database, scopes: str = "export") -> dict[str, str]:
    with database.session() as session:
        key = store.create_api_key(session=session, name="main-system", scopes=scopes)
    return {"Authorization": f"Bearer {key}"}


# ---- the "done when": the same exact figures in JSON, CSV and XLSX ---------------------


def test_json_csv_and_xlsx_carry_the_same_exact_figures(client: TestClient, auth: dict[str, str],
                                                        database: Database) -> None:
    ids = three_meetings(client, auth)
    key = export_key(database)
    r = client.get("/api/v1/results?year=2026", headers=key)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    records = page["results"]
    assert [rec["meeting_id"] for rec in records] == ids
    assert [(rec["unit_code"], rec["score"], rec["component"]) for rec in records] == [
        ("JL001", {"rounded": "79.85", "exact": "79.85"}, {"rounded": "31.94", "exact": "31.94"}),
        ("JL002", {"rounded": "93.33", "exact": "280/3"}, {"rounded": "37.33", "exact": "112/3"}),
        ("ZZ001", {"rounded": "100.00", "exact": "100"}, {"rounded": "40.00", "exact": "40"}),
    ]
    first = records[0]
    assert (first["ballots"], first["counted"], first["dropped"], first["flagged"]) == (10, 8, 2, 9)
    assert (first["category"], first["category_name"], first["meeting_date"]) == ("party_gov", "党政机关", "2026-12-03")
    assert (first["template_id"], first["template_version"], first["result_version"]) == ("default", 1, 1)
    assert first["total_sum"] == "638.8"
    assert len(first["digest"]) == 64
    p01 = first["items"][0]["points"][0]
    # kept: 2 × C (3), 3 × B (4.8), the ballot with p01 B (4.8), 2 × A (6): 37.2 / 8
    assert (p01["id"], p01["average"]) == ("p01", {"rounded": "4.65", "exact": "4.65"})
    assert first["items"][0]["average"] == {"rounded": "15.85", "exact": "15.85"}
    # only the group that reached K=5 is shown; the three empty ones are not listed at all
    assert first["groups"] == []
    assert records[2]["groups"] == [{"key": "representatives", "name": "党员群众代表", "weight": None, "ballots": 6,
                                     "score": {"rounded": "100.00", "exact": "100"}}]
    assert sum(Fraction(item["average"]["exact"]) for item in records[1]["items"]) == Fraction(280, 3)

    # CSV, chosen by format=, UTF-8 with a BOM, parsed with the csv module
    r = client.get("/api/v1/results?year=2026&format=csv", headers=key)
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(row["单位编码 Unit code"], row["得分 Score"], row["得分精确值 Score exact"],
             row["现场测评折算分 On-site component"], row["折算分精确值 Component exact"]) for row in rows] == [
        (rec["unit_code"], rec["score"]["rounded"], rec["score"]["exact"], rec["component"]["rounded"],
         rec["component"]["exact"]) for rec in records
    ]
    assert [row["测评票集摘要 Ballot-set digest"] for row in rows] == [rec["digest"] for rec in records]
    assert rows[0]["单位名称 Unit name"] == "省直机关事务管理局"
    assert (rows[0]["计入票数 Ballots counted"], rows[0]["去掉最高最低分票数 Dropped by trim"]) == ("8", "2")

    # CSV of the per-point averages, chosen by the Accept header
    r = client.get("/api/v1/results?year=2026&table=points", headers={**key, "Accept": "text/csv"})
    point_rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    json_points = {(rec["meeting_id"], p["id"]): p["average"]["exact"]
                   for rec in records for item in rec["items"] for p in item["points"]}
    csv_points = {(int(row["评议会编号 Meeting ID"]), row["编号 ID"]): row["平均分精确值 Average exact"]
                  for row in point_rows if row["层级 Level"] == "要点 point"}
    assert csv_points == json_points
    assert len(point_rows) == 3 * (19 + 5)

    # XLSX, chosen by the Accept header, opened with openpyxl
    r = client.get("/api/v1/results?year=2026", headers={**key, "Accept": XLSX})
    assert r.headers["content-type"] == XLSX
    assert r.headers["content-disposition"] == 'attachment; filename="results-2026.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["结果 Results", "要点平均分 Point averages", "评议人类别 Rater groups"]
    sheet = book["结果 Results"]
    header = [cell.value for cell in sheet[1]]
    table = [dict(zip(header, (cell.value for cell in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert [(row["单位编码 Unit code"], row["得分精确值 Score exact"], row["折算分精确值 Component exact"])
            for row in table] == [(rec["unit_code"], rec["score"]["exact"], rec["component"]["exact"]) for rec in records]
    # rounded figures are numbers shown with two places
    assert [Decimal(str(row["得分 Score"])) for row in table] == [Decimal("79.85"), Decimal("93.33"), Decimal("100")]
    assert sheet.cell(row=2, column=header.index("得分 Score") + 1).number_format == "0.00"
    sheet = book["要点平均分 Point averages"]
    header = [cell.value for cell in sheet[1]]
    xlsx_points = {(row[2], row[6]): row[10] for row in sheet.iter_rows(min_row=2, values_only=True)
                   if row[4] == "要点 point"}
    assert header[10] == "平均分精确值 Average exact"
    assert xlsx_points == json_points
    groups = list(book["评议人类别 Rater groups"].iter_rows(min_row=2, values_only=True))
    assert [(g[0], g[4], g[7], g[9]) for g in groups] == [("ZZ001", "representatives", 6, "100")]


def test_spreadsheet_text_that_looks_like_a_formula_stays_text(client: TestClient, auth: dict[str, str]) -> None:
    add_unit(client, auth, "EV001", '=HYPERLINK("http://x","y")', "party_gov")
    meeting = open_meeting(client, auth, unit_code="EV001")["id"]
    cast(client, auth, meeting, [answers("A")] * 5)
    close(client, auth, meeting)
    r = client.get("/api/v1/results?format=csv", headers=auth)
    [row] = csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))
    assert row["单位名称 Unit name"] == '\'=HYPERLINK("http://x","y")'
    book = openpyxl.load_workbook(io.BytesIO(client.get("/api/v1/results?format=xlsx", headers=auth).content))
    cell = book["结果 Results"]["B2"]
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x","y")', "s")


# ---- paging, since, filters ---------------------------------------------------------------------


def test_cursor_pages_are_stable_and_since_finds_a_reclose(client: TestClient, auth: dict[str, str]) -> None:
    ids = three_meetings(client, auth)
    seen, cursor, pages = [], None, 0
    while True:
        r = client.get("/api/v1/results", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=auth)
        assert r.status_code == 200, r.text
        seen += [rec["meeting_id"] for rec in r.json()["results"]]
        cursor, pages = r.json()["next_cursor"], pages + 1
        if cursor is None:
            break
    assert (seen, pages) == (ids, 2)

    all_records = client.get("/api/v1/results", headers=auth).json()["results"]
    mark = all_records[-1]["closed_at"]
    assert client.get("/api/v1/results", params={"since": mark}, headers=auth).json()["results"] == []
    since_first = client.get("/api/v1/results", params={"since": all_records[0]["closed_at"]}, headers=auth).json()
    assert [rec["meeting_id"] for rec in since_first["results"]] == ids[1:]

    # A page fetched, then the first meeting reopened and closed again: it comes after the cursor.
    page1 = client.get("/api/v1/results", params={"limit": 2}, headers=auth).json()
    r = client.post(f"/api/v1/meetings/{ids[0]}/reopen", json={"reason": "补录一张漏计的纸质票"}, headers=auth)
    assert r.status_code == 200
    reopened = client.get("/api/v1/results", headers=auth).json()["results"]
    assert [rec["meeting_id"] for rec in reopened] == ids[1:]
    cast(client, auth, ids[0], [answers("B")] * 5)  # closing again must add at least K ballots
    close(client, auth, ids[0])
    changed = client.get("/api/v1/results", params={"since": mark}, headers=auth).json()["results"]
    # 15 ballots now: drop 100 and 0 -> (638.8 + 5 × 80) / 13 = 1038.8 / 13
    assert [(rec["meeting_id"], rec["result_version"], rec["score"]["exact"]) for rec in changed] == [
        (ids[0], 2, "5194/65")
    ]
    rest = client.get("/api/v1/results", params={"cursor": page1["next_cursor"]}, headers=auth).json()["results"]
    assert [(rec["meeting_id"], rec["result_version"]) for rec in rest] == [(ids[2], 1), (ids[0], 2)]


@pytest.mark.parametrize(
    ("query", "code", "detail"),
    [
        ("yaer=2026", "results_unknown_filter",
         "不支持的查询参数 yaer；可用：year, category, unit, since, cursor, limit, format, table"),
        ("cursor=not-a-cursor", "results_cursor", "cursor 无效：请使用上一页返回的 next_cursor 原样传回"),
        ("cursor=" + encode_cursor(1)[:-3], "results_cursor",
         "cursor 无效：请使用上一页返回的 next_cursor 原样传回"),
        ("format=pdf", "results_format", "格式 pdf 无效，可选：json、csv、xlsx"),
        ("table=ballots&format=csv", "results_table", "表 ballots 无效，可选：results, points, groups"),
        ("category=nope", "unit_unknown_category", "单位类别 nope 无效，可选：party_gov/central/mass_org/enterprise"),
        ("limit=0", "request_invalid", "请求内容有误：query.limit 应不小于 1"),
        ("year=twenty", "request_invalid", "请求内容有误：query.year 应为整数"),
    ],
)
def test_bad_queries_get_a_clear_422(client: TestClient, auth: dict[str, str], query: str, code: str,
                                     detail: str) -> None:
    r = client.get(f"/api/v1/results?{query}", headers=auth)
    assert (r.status_code, r.json()["code"], r.json()["detail"]) == (422, code, detail)


def test_filters_by_category_unit_and_year(client: TestClient, auth: dict[str, str]) -> None:
    ids = three_meetings(client, auth)

    def units(query: str) -> list[str]:
        r = client.get(f"/api/v1/results?{query}", headers=auth)
        assert r.status_code == 200, r.text
        return [rec["unit_code"] for rec in r.json()["results"]]

    assert units("category=central") == ["ZZ001"]
    assert units("category=party_gov&year=2026") == ["JL001", "JL002"]
    assert units("unit=JL002") == ["JL002"]
    assert units("year=2025") == []
    r = client.get("/api/v1/results?unit=XX999", headers=auth)
    assert (r.status_code, r.json()["detail"]) == (404, "找不到单位 XX999")
    # an open meeting has no result yet
    open_meeting(client, auth, unit_code="JL001")
    assert [rec["meeting_id"] for rec in client.get("/api/v1/results", headers=auth).json()["results"]] == ids


@pytest.mark.parametrize(
    "cursor",
    ["", "e30", "eyJ2IjogMn0",  # {} ; v=2 without a number
     "eyJ2IjogMiwgInMiOiB0cnVlfQ",  # s = true
     "eyJ2IjogMiwgInMiOiAtMX0",  # s = -1
     "eyJ2IjogMiwgInMiOiAiNyJ9",  # s = "7"
     "eyJ2IjogMywgInMiOiA3fQ",  # v = 3
     "%%%", "eyJ2Ijog"],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode_cursor(cursor)
    assert caught.value.problem.code == "results_cursor"


@pytest.mark.parametrize(
    "cursor",
    ["eyJ2IjogMSwgImF0IjogIjIwMjYtMDEtMDFUMDA6MDA6MDArMDA6MDAiLCAibSI6IDF9",  # as version 1 made them
     "eyJ2IjogMSwgImF0IjogIjIwMjYtMDEtMDFUMDA6MDA6MDAiLCAibSI6IDF9"],  # a naive time, refused by version 1 too
)
def test_cursors_of_version_1_are_refused_as_old(cursor: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode_cursor(cursor)
    assert caught.value.problem.code == "results_cursor_old"


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor(42)) == 42


# ---- who may read -------------------------------------------------------------------------------


def test_export_scope_reads_results_and_nothing_else(client: TestClient, auth: dict[str, str],
                                                     database: Database) -> None:
    [first, *_] = three_meetings(client, auth)
    key = export_key(database)
    assert client.get("/api/v1/results", headers=key).status_code == 200
    assert client.get("/api/v1/results/schema", headers=key).status_code == 200
    assert client.get("/api/v1/overview?year=2026", headers=key).status_code == 200
    body = {"unit_code": "JL001", "year": 2026, "inspection": "90", "key_tasks": "90"}
    assert client.post("/api/v1/composite", json=body, headers=key).status_code == 200
    forbidden = [
        ("GET", "/api/v1/units"), ("GET", f"/api/v1/meetings/{first}"), ("GET", f"/api/v1/meetings/{first}/result"),
        ("GET", f"/api/v1/meetings/{first}/audit"), ("GET", "/api/v1/webhooks"),
        ("POST", f"/api/v1/meetings/{first}/reopen"),
    ]
    for method, path in forbidden:
        r = client.request(method, path, headers=key, json={"reason": "x"})
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), path
    assert client.get("/api/v1/results").status_code == 401
    with database.session() as session:
        session.execute(update(ApiKey).where(ApiKey.name == "main-system").values(revoked=True))  # type: ignore[arg-type]
        session.commit()
    r = client.get("/api/v1/results", headers=key)
    assert (r.status_code, r.json()["code"]) == (401, "not_authenticated")


def test_the_result_schema_is_documented_and_versioned(client: TestClient, auth: dict[str, str]) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    record = spec["components"]["schemas"]["ResultRecord"]
    assert record["examples"][0]["unit_code"] == "JL001"
    assert record["properties"]["schema_version"]["enum"] == [1]
    ResultRecord.model_validate(RESULT_EXAMPLE)
    assert spec["components"]["schemas"]["WebhookBody"]["properties"]["result"]["$ref"].endswith("/ResultRecord")
    assert "result_event" in spec["paths"]["/api/v1/webhooks"]["post"]["callbacks"]
    content = spec["paths"]["/api/v1/results"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv", XLSX}
    schema = client.get("/api/v1/results/schema", headers=auth).json()
    assert schema["$id"] == "onsite-ballot/result/v1"
    assert {"score", "component", "digest", "result_version", "items", "groups"} <= set(schema["required"])


# ---- overview -----------------------------------------------------------------------------------


def test_overview_ranks_and_flags_units_without_a_review_in_three_years(client: TestClient,
                                                                        auth: dict[str, str]) -> None:
    three_meetings(client, auth)
    for code, name, year in (("OLD01", "三年前评过", 2023), ("TWO01", "两年前评过", 2024)):
        add_unit(client, auth, code, name, "party_gov")
        meeting = open_meeting(client, auth, unit_code=code, year=year, date=f"{year}-11-20")["id"]
        cast(client, auth, meeting, [answers("B")] * 5)
        close(client, auth, meeting)
    add_unit(client, auth, "NEW01", "从未评过", "party_gov")
    r = client.get("/api/v1/overview?year=2026&category=party_gov", headers=auth)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["years"] == [2026, 2025, 2024]
    rows = {u["unit_code"]: (u["reviewed"], u["score"] and u["score"]["exact"], u["rank"], u["overdue"])
            for u in page["units"]}
    assert rows == {
        "JL001": ({"2026": True, "2025": False, "2024": False}, "79.85", 2, False),
        "JL002": ({"2026": True, "2025": False, "2024": False}, "280/3", 1, False),
        "NEW01": ({"2026": False, "2025": False, "2024": False}, None, None, False),  # no history yet
        "OLD01": ({"2026": False, "2025": False, "2024": False}, None, None, True),
        "TWO01": ({"2026": False, "2025": False, "2024": True}, None, None, False),
    }
    assert page["overdue"] == ["OLD01"]
    everyone = client.get("/api/v1/overview?year=2026", headers=auth).json()
    assert [(u["unit_code"], u["rank"]) for u in everyone["units"] if u["rank"]] == [
        ("JL001", 2), ("JL002", 1), ("ZZ001", 1)
    ]
    r = client.get("/api/v1/overview?year=2026&categroy=x", headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "results_unknown_filter")


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({}, {}),
        ({"a": Fraction(90)}, {"a": 1}),
        ({"a": Fraction(85), "b": Fraction(90), "c": Fraction(85), "d": Fraction(80)}, {"b": 1, "a": 2, "c": 2, "d": 4}),
        # 0.005 of a point decides a tier: exact fractions, never rounded first
        ({"a": Fraction(280, 3), "b": Fraction("93.33")}, {"a": 1, "b": 2}),
    ],
)
def test_ranks(scores: dict[str, Fraction], expected: dict[str, int]) -> None:
    assert ranks(scores) == expected


def test_review_window() -> None:
    assert window(2026) == [2026, 2025, 2024]


# ---- composite grade ----------------------------------------------------------------------------


def test_composite_grade_takes_the_frozen_onsite_score(client: TestClient, auth: dict[str, str]) -> None:
    three_meetings(client, auth)
    body = {"unit_code": "JL001", "year": 2026, "inspection": "88.5", "key_tasks": "92"}
    r = client.post("/api/v1/composite", json=body, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    # 79.85 × 0.4 = 31.94; 88.5 × 0.3 = 26.55; 92 × 0.3 = 27.6; sum 86.09
    assert (got["onsite"]["weighted"], got["inspection"]["weighted"], got["key_tasks"]["weighted"]) == (
        {"rounded": "31.94", "exact": "31.94"}, {"rounded": "26.55", "exact": "26.55"},
        {"rounded": "27.60", "exact": "27.6"},
    )
    assert got["grade"] == {"rounded": "86.09", "exact": "86.09"}
    assert got["result_version"] == 1
    r = client.post("/api/v1/composite", headers=auth, json={
        "unit_code": "JL002", "year": 2026, "inspection": "90", "key_tasks": "90",
        "weights": {"onsite": "0.5", "inspection": "0.25", "key_tasks": "0.25"}})
    # 280/3 × 0.5 + 90 × 0.5 = 140/3 + 45 = 275/3
    assert r.json()["grade"] == {"rounded": "91.67", "exact": "275/3"}
    cases = [
        ({"unit_code": "JL001", "year": 2025, "inspection": "90", "key_tasks": "90"}, 404,
         "单位 JL001 在 2025 年没有已结束的现场测评"),
        ({"unit_code": "JL001", "year": 2026, "inspection": "100.5", "key_tasks": "90"}, 422,
         "inspection 应为 0 到 100 之间的数字，收到 100.5"),
        ({"unit_code": "JL001", "year": 2026, "inspection": "90", "key_tasks": "NaN"}, 422,
         "key_tasks 应为 0 到 100 之间的数字，收到 NaN"),
        ({"unit_code": "JL001", "year": 2026, "inspection": "90", "key_tasks": "90",
          "weights": {"onsite": "0.4", "inspection": "0.3", "key_tasks": "0.2"}}, 422, "各部分权重之和应为 1，现为 0.9"),
    ]
    for body, status, detail in cases:
        r = client.post("/api/v1/composite", json=body, headers=auth)
        assert (r.status_code, r.json()["detail"]) == (status, detail), body


def _record(score: str | None) -> ResultRecord:
    example = {**RESULT_EXAMPLE, "score": {"rounded": "x", "exact": score} if score else None}
    return ResultRecord.model_validate(example)


@pytest.mark.parametrize(
    ("score", "inspection", "key_tasks", "weights", "grade"),
    [
        ("79.85", "88.5", "92", ("0.4", "0.3", "0.3"), "86.09"),
        ("280/3", "0", "0", ("0.4", "0.3", "0.3"), "112/3"),
        ("100", "100", "100", ("0.4", "0.3", "0.3"), "100"),
        ("93.125", "0", "0", ("1", "0", "0"), "93.125"),
        ("80", "70", "60", ("0.2", "0.5", "0.3"), "69"),
    ],
)
def test_composite_table(score: str, inspection: str, key_tasks: str, weights: tuple[str, str, str],
                         grade: str) -> None:
    body = CompositeBody(unit_code="JL001", year=2026, inspection=inspection, key_tasks=key_tasks,
                         weights=CompositeWeights(onsite=weights[0], inspection=weights[1], key_tasks=weights[2]))
    assert composite(body, _record(score)).grade.exact == grade


def test_composite_without_a_score_is_a_conflict() -> None:
    body = CompositeBody(unit_code="JL001", year=2026, inspection="90", key_tasks="90")
    with pytest.raises(Conflict) as caught:
        composite(body, _record(None))
    assert caught.value.problem.code == "composite_no_score"
