"""One message catalogue: every message in both languages with the same placeholders, no Chinese in an
English answer (nor in the parameters the store raises), the reader's language from end to end."""

from __future__ import annotations

import re
from string import Formatter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.errors import Invalid
from app.imports import parse_units_csv
from app.messages import MESSAGES, REASONS, TERMS, Listing, Problem, render
from tests.conftest import ALL_A, mint, open_meeting

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
EN = {"Accept-Language": "en"}
# The link to the other language names it in its own words: 中文 on an English page.
ENDONYMS = {"switch_to"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


CATALOGUE = [*(("message", key, pair) for key, pair in MESSAGES.items()),
             *(("reason", key, pair) for key, pair in REASONS.items()),
             *((f"term {kind}", key, pair) for kind, words in TERMS.items() for key, pair in words.items())]


@pytest.mark.parametrize(("kind", "key", "pair"), CATALOGUE, ids=[f"{k}:{key}" for k, key, _ in CATALOGUE])
def test_every_entry_in_both_languages_with_the_same_placeholders_and_english_without_cjk(
    kind: str, key: str, pair: tuple[str, str]
) -> None:
    zh, en = pair
    assert zh.strip() and en.strip()
    assert placeholders(zh) == placeholders(en)
    if key not in ENDONYMS:
        assert CJK.findall(en) == []


def test_the_catalogue_is_one_and_nested_values_are_rendered_in_the_readers_language() -> None:
    row = Problem("csv_row", {"line": 2, "error": [Problem("unit_code_taken", {"code": "JL001"}),
                                                   Problem("csv_name_length", {"max": 128})]})
    assert row.message("zh") == "第 2 行：单位编码 JL001 已存在；单位名称应为 1–128 个字符"
    assert row.message("en") == "Line 2: The unit code JL001 is already taken; The unit name must have 1–128 characters"
    moved = Problem("meeting_transition", {"state": "closed", "action": "close"})
    assert moved.message("zh") == "评议会当前状态为“已结束”，不能执行“结束”"
    assert moved.message("en") == "The meeting is closed; it cannot be closed"
    assert render("figures_insufficient", "en", {"groups": Listing(["leaders", "committee"])}) == (
        "leaders, committee: fewer than K ballots, so there is no weighted score")
    assert render("figures_insufficient", "zh", {"groups": Listing(["班子成员", "机关党委委员"])}) == (
        "评议人类别设置有误：班子成员、机关党委委员 的有效票数少于 K，无法计算加权得分")


def test_import_errors_in_english_hold_no_chinese() -> None:
    data = "code,name,category\nJL001,省直机关事务管理局,party_gov\nJL002,,nowhere\nJL003,x\nJL004,y,party_gov,2024年\n"
    with pytest.raises(Invalid) as caught:
        parse_units_csv(data.replace(",2024年", "").encode(), categories=["party_gov"])
    assert [problem.message("en") for problem in caught.value.problems] == [
        "Line 3: The unit name must have 1–128 characters; Category nowhere is not one of party_gov",
        "Line 4: 2 columns where 3 are expected",
    ]
    with pytest.raises(Invalid) as caught:
        parse_units_csv("code,name,category,reviewed_years\nJL004,y,party_gov,2024年\n".encode(), categories=["party_gov"])
    assert [problem.message("en") for problem in caught.value.problems] == [
        "Line 2: The reviewed years 2024年 must be years from 2000 to 2100, separated by commas",
    ]


def english_answer(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[int, str, str]:
    headers = {**kwargs.pop("headers", {}), **EN}
    r = client.request(method, url, headers=headers, **kwargs)
    body = r.json()
    for text in [body["detail"], *body["problems"]]:
        assert CJK.findall(text) == [], (url, text)
    return r.status_code, body["code"], body["detail"]


def test_english_answers_carry_no_chinese(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    code, late, *others = mint(client, auth, meeting["id"], 6)
    for voter in [code, *others]:  # a meeting closes with K ballots
        assert client.post("/api/v1/ballots", json={"token": voter, "answers": ALL_A}).status_code == 201
    m = meeting["id"]
    assert client.post(f"/api/v1/meetings/{m}/close", headers=auth).status_code == 200
    cases: list[tuple[str, str, dict[str, Any], tuple[int, str, str]]] = [
        ("POST", f"/api/v1/meetings/{m}/close", {},
         (409, "meeting_transition", "The meeting is closed; it cannot be closed")),
        ("POST", f"/api/v1/meetings/{m}/open", {},
         (409, "meeting_transition", "The meeting is closed; it cannot be opened")),
        ("POST", "/api/v1/units/import", {"content": b"code,name,category\nJL009,unit,nowhere\n",
                                          "headers": {"Content-Type": "text/csv"}},
         (422, "csv_row", "Line 2: Category nowhere is not one of party_gov/central/mass_org/enterprise")),
        ("POST", "/api/v1/meetings", {"json": {"unit_code": "JL001", "year": 2026, "date": "2026-12-03",
                                               "title": "t", "attendance": 5,
                                               "groups": [{"key": "a", "name": "甲", "weight": "x"},
                                                          {"key": "b", "name": "乙", "weight": "50"}]}},
         (422, "meeting_weight_not_number", "The weight x is not a number")),
        ("POST", "/api/v1/meetings", {"json": {"unit_code": "JL001", "year": 2026, "date": "2026-12-03",
                                               "title": "t", "attendance": 5, "mode": "screen",
                                               "groups": [{"key": "a", "name": "甲", "weight": "100"}]}},
         (422, "meeting_screen_weights",
          "Codes claimed from the screen have no rater group, so a screen meeting cannot weight groups")),
        ("POST", "/api/v1/meetings", {"json": {"unit_code": "JL001", "year": 1999, "date": "2026-12-03",
                                               "title": "t", "attendance": 5}},
         (422, "request_invalid", "The request is wrong: body.year must be at least 2000")),
        ("POST", "/api/v1/meetings", {"content": b'{"unit_code": "JL001",, }',
                                      "headers": {"Content-Type": "application/json"}},
         (422, "request_json", "The request body is not valid JSON (the error is at character 23)")),
        ("DELETE", "/api/v1/units", {}, (405, "method_not_allowed", "This address does not take this request method")),
        ("POST", "/api/v1/ballots", {"json": {"token": late, "answers": ALL_A}},
         (409, "meeting_not_open", "The meeting is closed; it takes no ballots")),
        ("POST", "/api/v1/accounts", {"json": {"username": "wang", "display_name": "王", "password": "short",
                                               "role": "secretary"}},
         (422, "password_too_short", "A password needs at least 10 characters")),
    ]
    for method, url, kwargs, expected in cases:
        headers = {**auth, **kwargs.pop("headers", {})}
        assert english_answer(client, method, url, headers=headers, **kwargs) == expected, (method, url)


def test_chinese_is_the_default_and_the_same_problem_reads_in_chinese(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    r = client.post(f"/api/v1/meetings/{meeting['id']}/open", headers=auth)
    assert (r.status_code, r.json()["detail"]) == (409, "评议会当前状态为“进行中”，不能执行“开启”")
    r = client.post("/api/v1/meetings", content=b"{", headers={**auth, "Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"], r.json()["detail"]) == (
        422, "request_json", "请求内容不是有效的 JSON（第 2 个字符处有误）")
