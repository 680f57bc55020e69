"""Bad input: control characters refused alike on both backends with a clear 422 that changes nothing;
grades read the same way by the API and the form; a meeting's date in its year; no blank titles."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db import Database
from app.tables import AuditEvent, Ballot, Meeting, SealedBallot, TemplateVersion, Unit, User, WebhookEndpoint
from app.templates import default_template
from tests.conftest import ALL_A, kept_ballots, mint, open_meeting
from tests.test_access import PASSWORD, sign_in
from tests.test_ballot_pages import checked
from tests.test_console import make_user

EN = {"Accept-Language": "en"}


def counts(database: Database) -> dict[str, int]:
    """Rows per kind; ballots kept in the box or still sealed."""
    tables = {"ballots": Ballot, "sealed": SealedBallot, "units": Unit, "meetings": Meeting,
              "templates": TemplateVersion, "users": User, "webhooks": WebhookEndpoint, "audit": AuditEvent}
    with database.reading() as conn:
        found = {name: conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]
                 for name, table in tables.items()}
    found["ballots"] += found.pop("sealed")
    return found


def stored_comments(database: Database, meeting_id: int) -> list[str | None]:
    return sorted((b.comment or "") for b in kept_ballots(database, meeting_id))


@pytest.mark.parametrize(
    ("comment", "shown"),
    [("意见\x00建议", "body.comment"), ("\x1b[31m红字", "body.comment"), ("响铃\x07", "body.comment"),
     ("C1\x85控制", "body.comment"), ("删除\x7f", "body.comment")],
    ids=["nul", "escape", "bell", "c1", "del"],
)
def test_control_characters_in_a_comment_get_422_and_spend_nothing(
    client: TestClient, auth: dict[str, str], database: Database, comment: str, shown: str
) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    before = counts(database)
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A, "comment": comment}, headers=EN)
    assert (r.status_code, r.json()["code"], r.json()["detail"]) == (
        422, "text_control",
        f"{shown} holds a control character (such as NUL, or a line break in one-line text); remove it and send again",
    )
    assert counts(database) == before
    # The code was not spent: the same rater sends again without it.
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A, "comment": "意见建议"})
    assert r.status_code == 201


def test_line_breaks_and_tabs_are_fine_in_a_comment(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A, "comment": "一、学习\r\n二、\t整改"})
    assert r.status_code == 201
    assert stored_comments(database, meeting["id"]) == ["一、学习\r\n二、\t整改"]


def test_a_nul_in_the_phone_form_is_named_next_to_the_comment(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.post(f"/b/{code}", data={**ALL_A, "p03": "C", "comment": "好\x00的"})
    assert r.status_code == 422
    assert "意见建议里有看不见的控制字符，请删除后再提交" in r.text
    assert checked(r.text) == {**ALL_A, "p03": "C"}
    assert stored_comments(database, meeting["id"]) == []
    assert client.post(f"/b/{code}", data={**ALL_A, "comment": "好的"}, follow_redirects=False).status_code == 303


def test_control_characters_anywhere_an_organizer_types(client: TestClient, auth: dict[str, str],
                                                        database: Database) -> None:
    meeting = open_meeting(client, auth)
    for voter in mint(client, auth, meeting["id"], 5):  # a meeting closes with K ballots
        assert client.post("/api/v1/ballots", json={"token": voter, "answers": ALL_A}).status_code == 201
    template = default_template().model_dump(mode="json")
    before = counts(database)
    cases: list[tuple[str, str, dict[str, Any], str, str]] = [
        ("POST", "/api/v1/units", {"json": {"code": "JL\x00009", "name": "单位", "category": "party_gov"}},
         "text_control", "body.code"),
        ("POST", "/api/v1/units", {"json": {"code": "JL009", "name": "单位\n第二行", "category": "party_gov"}},
         "text_control", "body.name"),
        ("PATCH", "/api/v1/units/JL001", {"json": {"name": "改\x00名", "category": "party_gov"}},
         "text_control", "body.name"),
        ("POST", "/api/v1/meetings", {"json": {"unit_code": "JL001", "year": 2026, "date": "2026-12-03",
                                               "title": "述职\x00评议会", "attendance": 5}},
         "text_control", "body.title"),
        ("POST", "/api/v1/meetings", {"json": {"unit_code": "JL001", "year": 2026, "date": "2026-12-03",
                                               "title": "述职评议会", "attendance": 5,
                                               "groups": [{"key": "a", "name": "甲\x00"}]}},
         "text_control", "body.groups.0.name"),
        ("POST", "/api/v1/accounts", {"json": {"username": "li\x00", "display_name": "李", "password": PASSWORD,
                                               "role": "viewer"}},
         "text_control", "body.username"),
        ("POST", "/api/v1/api-keys", {"json": {"name": "main\x00system"}}, "text_control", "body.name"),
        ("POST", "/api/v1/webhooks", {"json": {"url": "https://scoring.example/h\x00", "secret": "s" * 16}},
         "text_control", "body.url"),
        ("POST", "/api/v1/templates", {"json": {**template, "version": 2, "name": "测评票\x00"}},
         "template_field", "Template field name"),
    ]
    for method, url, kwargs, code, field in cases:
        r = client.request(method, url, headers={**auth, **EN}, **kwargs)
        assert (r.status_code, r.json()["code"]) == (422, code), (url, r.text)
        assert r.json()["detail"].startswith(f"{field} holds a control character"), r.json()["detail"]
    r = client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth)
    assert r.status_code == 200
    r = client.post(f"/api/v1/meetings/{meeting['id']}/reopen", json={"reason": "重算\x00"}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "text_control")
    r = client.post("/api/v1/units/import", content="code,name,category\nJL010,单位\x00,party_gov\n".encode(),
                    headers={**auth, "Content-Type": "text/csv"})
    assert (r.status_code, r.json()["detail"]) == (422, "第 2 行：单位名称 含有控制字符（如 NUL 或单行文字中的换行），请删除后再提交")
    after = counts(database)
    assert {k: after[k] - before[k] for k in after} == {"ballots": 0, "units": 0, "meetings": 0, "templates": 0,
                                                        "users": 0, "webhooks": 0, "audit": 1}  # the close


def test_control_characters_in_an_address_get_422_not_a_database_error(client: TestClient, auth: dict[str, str]) -> None:
    for method, url in [("GET", "/api/v1/units?category=%00"), ("PATCH", "/api/v1/units/JL%00"),
                        ("GET", "/api/v1/results?unit=%00"), ("GET", "/b/K7MQ2X9P%00"),
                        ("GET", "/api/v1/templates/default%0A")]:
        r = client.request(method, url, headers=auth, json={"name": "x", "category": "party_gov"})
        assert (r.status_code, r.json()["code"], r.json()["detail"]) == (
            422, "request_control", "网址中含有控制字符（如 NUL），请检查后重试"), url


def test_console_forms_refuse_control_characters_and_keep_what_was_typed(client: TestClient,
                                                                         database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    before = counts(database)
    r = client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "甲\x00单位", "category": "party_gov"})
    assert r.status_code == 422
    assert "单位名称 含有控制字符" in r.text and 'value="JL001"' in r.text
    r = client.post("/login", data={"username": "wang\x00", "password": PASSWORD, "csrf": csrf})
    assert (r.status_code, "用户名或密码不正确" in r.text) == (401, True)
    assert {k: v for k, v in counts(database).items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}


# ---- grades: normalized on purpose, the same on the API and the form -------------------------------


def test_grades_forgive_case_and_spaces_and_are_stored_as_the_templates_key(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    code1, code2 = mint(client, auth, meeting["id"], 2)
    assert client.post("/api/v1/ballots", json={"token": code1, "answers": {**ALL_A, "p01": "b", "p02": " C "}}).status_code == 201
    r = client.post(f"/b/{code2}", data={**ALL_A, "p01": "b", "p02": " C "}, follow_redirects=False)
    assert r.status_code == 303
    stored = [b.answers for b in kept_ballots(database, meeting["id"])]
    assert stored == [{**ALL_A, "p01": "B", "p02": "C"}] * 2


def lower_case_template(client: TestClient, auth: dict[str, str]) -> None:
    data = default_template().model_dump(mode="json")
    data.update(id="lower", version=1, grades=[{**grade, "key": grade["key"].lower()} for grade in data["grades"]])
    r = client.post("/api/v1/templates", json=data, headers=auth)
    assert r.status_code == 201, r.text


def test_the_form_shows_a_typed_grade_as_chosen_as_the_api_reads_it(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    lower_case_template(client, auth)
    meeting = open_meeting(client, auth, template_id="lower")
    [code] = mint(client, auth, meeting["id"], 1)
    sent = {point: "A" for point in ALL_A if point != "p07"}
    r = client.post(f"/b/{code}", data=sent)  # p07 missing: the page comes back with the answers
    assert r.status_code == 422
    assert checked(r.text) == {point: "a" for point in sent}
    r = client.post(f"/b/{code}", data={**sent, "p07": " B "}, follow_redirects=False)
    assert r.status_code == 303
    [ballot] = kept_ballots(database, meeting["id"])
    assert ballot.answers == {**{point: "a" for point in sent}, "p07": "b"}


# ---- a meeting's date in its year; no blank title ----------------------------------------------------


def meeting_body(**overrides: Any) -> dict[str, Any]:
    return {"unit_code": "JL001", "year": 2026, "date": "2026-12-03", "title": "述职评议会", "attendance": 5,
            **overrides}


def test_a_meeting_dated_outside_its_year_or_without_a_title_is_refused(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    open_meeting(client, auth)
    before = counts(database)
    cases = [
        (meeting_body(date="1900-01-01"), "meeting_date_year", "日期 1900-01-01 不在 2026 年内"),
        (meeting_body(date="2027-01-01"), "meeting_date_year", "日期 2027-01-01 不在 2026 年内"),
        (meeting_body(title="   "), "text_blank", "body.title 不能只有空格"),
        (meeting_body(title="\u3000\u3000"), "text_blank", "body.title 不能只有空格"),  # full-width spaces
    ]
    for body, code, detail in cases:
        r = client.post("/api/v1/meetings", json=body, headers=auth)
        assert (r.status_code, r.json()["code"], r.json()["detail"]) == (422, code, detail), body
    r = client.post("/api/v1/meetings", json=meeting_body(date="1900-01-01"), headers={**auth, **EN})
    assert r.json()["detail"] == "The date 1900-01-01 is not in the year 2026"
    assert counts(database) == before
    assert client.post("/api/v1/meetings", json=meeting_body(date="2026-01-01"), headers=auth).status_code == 201


def test_the_console_form_refuses_them_too_and_keeps_what_was_typed(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "甲单位", "category": "party_gov"})
    form = {"csrf": csrf, "unit_code": "JL001", "title": "述职评议会", "year": "2026", "date": "1900-01-01",
            "mode": "cards", "attendance": "30", "template": "default:1", "trim": "1", "component_weight": "0.4",
            "group_key_0": "a", "group_name_0": "甲"}
    r = client.post("/meetings/new", data=form)
    assert r.status_code == 422
    assert "日期 1900-01-01 不在 2026 年内" in r.text
    assert 'value="1900-01-01"' in r.text and 'value="述职评议会"' in r.text
    assert counts(database)["meetings"] == 0
    # The console's form is filled with a title from the unit and the year; one cleared to spaces takes
    # that title again rather than none (the API, which fills nothing, refuses it: see above).
    r = client.post("/meetings/new", data={**form, "date": "2026-12-03", "title": "   "}, follow_redirects=False)
    assert r.status_code == 303
    with database.reading() as conn:
        assert conn.execute(select(Meeting.title)).scalars().all() == ["甲单位2026年度党建工作述职评议会"]
