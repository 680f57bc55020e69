"""The organizer's console: signing in, forms that keep what was typed, CSRF, lockout, secrets."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app import cli, store
from app.db import Database
from tests.conftest import TEST_SECRET
from tests.test_access import PASSWORD, sign_in


def make_user(database: Database, username: str = "wang", role: str = "admin", categories: tuple[str, ...] = ()) -> None:
    with database.session() as session:
        store.create_user(session=session, actor="t", username=username, display_name="王主任",
                          password=PASSWORD, role=role, categories=categories)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def test_sign_in_out(client: TestClient, database: Database) -> None:
    make_user(database)
    r = client.get("/meetings", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/meetings")
    csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": "wang", "password": "wrong-password", "csrf": csrf})
    assert r.status_code == 401
    assert "用户名或密码不正确" in r.text
    assert 'value="wang"' in r.text  # the username is kept
    r = client.post("/login", data={"username": "wang", "password": PASSWORD, "csrf": csrf, "next": "/units"},
                    follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/units")
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    page = client.get("/meetings")
    assert "王主任 · 管理员" in page.text
    r = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert client.get("/meetings", follow_redirects=False).status_code == 303


def test_open_redirect_is_refused(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": "wang", "password": PASSWORD, "csrf": csrf,
                                    "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/meetings"


def test_lockout_after_repeated_failures(client: TestClient, database: Database) -> None:
    """A browser the account does not know; see tests/test_sessions.py for one it knows."""
    make_user(database)
    csrf = csrf_of(client.get("/login").text)
    for _ in range(5):
        r = client.post("/login", data={"username": "wang", "password": "nope-nope-nope", "csrf": csrf})
        assert "用户名或密码不正确" in r.text
    r = client.post("/login", data={"username": "wang", "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 401
    assert "用户名或密码不正确。连续输错 5 次后，未在本账号登录过的浏览器需等待 15 分钟再试" in r.text


def test_stale_form_gets_a_plain_page(client: TestClient, database: Database) -> None:
    make_user(database)
    sign_in(client, "wang")
    r = client.post("/units/new", data={"csrf": "stale", "code": "X1", "name": "甲", "category": "party_gov"})
    assert r.status_code == 403
    assert "页面已过期，请返回后重新提交" in r.text
    assert "Traceback" not in r.text
    with database.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM unit")).scalar_one() == 0


def test_unit_form_keeps_what_was_typed(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "甲单位", "category": "party_gov"})
    r = client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "乙单位", "category": "central"})
    assert r.status_code == 409
    assert "单位编码 JL001 已存在" in r.text
    assert 'value="乙单位"' in r.text
    assert '<option value="central" selected>' in r.text


def test_secretary_sees_only_assigned_categories(client: TestClient, database: Database) -> None:
    make_user(database, "admin1")
    make_user(database, "li", role="secretary", categories=("central",))
    with database.session() as session:
        store.create_unit(session=session, actor="t", code="A1", name="党政甲", category="party_gov")
        store.create_unit(session=session, actor="t", code="C1", name="中直乙", category="central")
    sign_in(client, "li")
    page = client.get("/units").text
    assert "中直乙" in page and "党政甲" not in page
    assert [u["code"] for u in client.get("/api/v1/units").json()] == ["C1"]
    r = client.get("/units/A1/edit")
    assert r.status_code == 403
    assert "您无权管理或查看“party_gov”类别的单位" in r.text


def test_import_preview_then_confirm(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    data = "\ufeffcode,name,category\r\nA1,甲单位,party_gov\r\nA2,乙单位,central\r\n".encode()
    r = client.post("/units/import", data={"csrf": csrf}, files={"file": ("units.csv", data, "text/csv")})
    assert r.status_code == 200
    assert "预览：将新增 2 个单位" in r.text
    with database.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM unit")).scalar_one() == 0
    payload = re.search(r'name="payload" value="([^"]+)"', r.text)
    assert payload is not None
    r = client.post("/units/import", data={"csrf": csrf, "payload": payload.group(1), "confirm": "1"},
                    follow_redirects=False)
    assert r.status_code == 303
    with database.reading() as conn:
        assert conn.execute(text("SELECT code FROM unit ORDER BY code")).scalars().all() == ["A1", "A2"]


def test_import_xlsx_reports_bad_rows(client: TestClient, database: Database) -> None:
    from io import BytesIO

    from openpyxl import Workbook

    make_user(database)
    csrf = sign_in(client, "wang")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["code", "name", "category"], ["A1", "甲单位", "party_gov"], ["A2", "乙单位", "nowhere"]):
        sheet.append(row)
    buffer = BytesIO()
    book.save(buffer)
    r = client.post("/units/import", data={"csrf": csrf}, files={"file": ("units.xlsx", buffer.getvalue())})
    assert r.status_code == 422
    assert "第 3 行：单位类别 nowhere 无效" in r.text
    with database.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM unit")).scalar_one() == 0


def test_meeting_open_warns_about_small_groups(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "甲单位", "category": "party_gov"})
    form = {"csrf": csrf, "unit_code": "JL001", "title": "述职评议会", "year": "2026", "date": "2026-12-03",
            "mode": "cards", "attendance": "30", "template": "default:1", "trim": "1", "component_weight": "0.4",
            "flagged_rule": "count", "group_key_0": "leaders", "group_name_0": "班子成员",
            "group_key_1": "reps", "group_name_1": "代表"}
    r = client.post("/meetings/new", data=form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/meetings/1")
    sheet = client.post("/meetings/1/cards", data={"csrf": csrf, "count": "10", "group": "reps"})
    assert sheet.status_code == 201
    assert sheet.text.count('<article class="card') == 10
    assert client.post("/meetings/1/cards", data={"csrf": csrf, "count": "2", "group": "leaders"}).status_code == 201
    r = client.post("/meetings/1/open", data={"csrf": csrf})
    assert r.status_code == 409
    assert "班子成员：2 张" in r.text
    r = client.post("/meetings/1/open", data={"csrf": csrf, "confirm": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/meetings/1").json()["state"] == "open"


def test_meeting_form_names_the_problem(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "甲单位", "category": "party_gov"})
    form = {"csrf": csrf, "unit_code": "JL001", "title": "述职评议会", "year": "2026", "date": "2026-12-03",
            "mode": "cards", "attendance": "30", "template": "default:1", "trim": "1", "component_weight": "0.4",
            "group_key_0": "a", "group_name_0": "甲", "group_weight_0": "60",
            "group_key_1": "b", "group_name_1": "乙", "group_weight_1": "30"}
    r = client.post("/meetings/new", data=form)
    assert r.status_code == 422
    assert "各类评议人权重之和应为 100%，现为 90%" in r.text
    assert 'value="60"' in r.text and 'value="述职评议会"' in r.text


def test_create_admin_command(tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(tmp_path))
    assert cli.main(["migrate"]) == 0  # the service's database, as `make run` leaves it
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["create-admin", "root"]) == 2
    assert "密码至少需要 10 个字符" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["create-admin", "root", "--name", "管理员"]) == 0
    assert "已创建管理员 root" in capsys.readouterr().out


def test_secrets_never_in_logs_or_database_in_clear(
    client: TestClient, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_user(database)
    csrf = sign_in(client, "wang")
    r = client.post("/api-keys", data={"csrf": csrf, "name": "主评分系统", "scopes": "export"})
    key = re.search(r'<code class="key">([^<]+)</code>', r.text)
    assert key is not None
    session_cookie = client.cookies.get("ob_session")
    assert session_cookie
    # The cookie's payload: the session's token (the server keeps its hash) and the CSRF token.
    payload = json.loads(base64.b64decode(session_cookie.split(".")[0] + "=="))
    browser = client.cookies.get("ob_browser", path="/login")
    assert payload["sid"] and browser
    with database.reading() as conn:
        dump = "\n".join(
            repr(row) for table in ("organizer", "api_key", "audit_event", "organizer_session", "known_browser")
            for row in conn.execute(text(f"SELECT * FROM {table}")).all()
        )
    assert dump.count(hashlib.sha256(payload["sid"].encode()).hexdigest()) == 1
    secrets = [PASSWORD, key.group(1), session_cookie, payload["sid"], browser, csrf, TEST_SECRET]
    for secret in secrets:
        assert secret not in dump
        assert secret not in caplog.text
    assert "$argon2id$" in dump  # the password is there only as an argon2 hash


def test_year_overview_marks_units_without_review(client: TestClient, auth: dict[str, str], database: Database) -> None:
    from tests.conftest import mint, open_meeting

    make_user(database, "li", role="viewer", categories=("party_gov",))
    reviewed = open_meeting(client, auth, unit_code="JL001", year=2026)
    for code in mint(client, auth, reviewed["id"], 5):
        client.post("/api/v1/ballots", json={"token": code, "answers": {f"p{i:02d}": "B" for i in range(1, 20)}})
    client.post(f"/api/v1/meetings/{reviewed['id']}/close", headers=auth)
    client.post("/api/v1/units", json={"code": "JL002", "name": "乙单位", "category": "party_gov"}, headers=auth)
    client.post("/api/v1/units", json={"code": "C001", "name": "中直丙", "category": "central"}, headers=auth)
    with database.writing() as conn:  # known to the service since before the three years
        conn.execute(text("UPDATE unit SET created_at = '2020-03-01 00:00:00' WHERE code = 'JL002'"))
    sign_in(client, "li")
    page = client.get("/overview?year=2026").text
    assert "连续三年未开展现场测评的单位（1 个）" in page
    assert "JL002 乙单位" in page and "中直丙" not in page
    assert '<a href="/meetings/1/report">80.00</a>' in page
