"""A year of 133 units (issue #14, points 11 and 12): imports that update, past review years, and a
three-year coverage that flags only what is really overdue."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db import Database
from tests.conftest import ALL_A, mint, open_meeting
from tests.test_access import sign_in
from tests.test_console import make_user

GBK_LIST = "\r\n".join([
    "单位编码,单位名称,单位类别,往年测评年度",
    "JL001,省委办公厅,党政机关,2024",
    "JL002,省总工会,群团组织,",
    "JL003,某银行省分行,中直单位,2021",
]).encode("gbk")


def _overview(client: TestClient, auth: dict[str, str], year: int = 2026) -> dict[str, tuple[bool, bool]]:
    page = client.get(f"/api/v1/overview?year={year}", headers=auth).json()
    return {u["unit_code"]: (u["overdue"], u["history_known"]) for u in page["units"]}


def test_import_gbk_with_chinese_headers_then_update(client: TestClient, auth: dict[str, str],
                                                     database: Database) -> None:
    r = client.post("/api/v1/units/import", content=GBK_LIST, headers={**auth, "Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (3, 0, 0)
    units = {u["code"]: (u["name"], u["category"], u["reviewed_years"]) for u in client.get("/api/v1/units", headers=auth).json()}
    assert units == {"JL001": ("省委办公厅", "party_gov", [2024]), "JL002": ("省总工会", "mass_org", []),
                     "JL003": ("某银行省分行", "central", [2021])}
    changed = "单位编码,单位名称,单位类别\r\nJL001,中共省委办公厅,党政机关\r\nJL002,省总工会,群团组织\r\n".encode("gbk")
    make_user(database)
    csrf = sign_in(client, "wang")
    r = client.post("/units/import", data={"csrf": csrf}, files={"file": ("units.csv", changed, "text/csv")})
    assert r.status_code == 200
    assert "预览：将新增 0 个单位，更新 1 个单位，1 个不变" in r.text
    assert "名称：省委办公厅 → 中共省委办公厅" in r.text
    with database.reading() as conn:
        assert conn.execute(text("SELECT name FROM unit WHERE code = 'JL001'")).scalar_one() == "省委办公厅"
    payload = re.search(r'name="payload" value="([^"]+)"', r.text)
    assert payload is not None
    r = client.post("/units/import", data={"csrf": csrf, "payload": payload.group(1), "confirm": "1"},
                    follow_redirects=False)
    assert r.status_code == 303
    with database.reading() as conn:
        assert conn.execute(text("SELECT name FROM unit WHERE code = 'JL001'")).scalar_one() == "中共省委办公厅"
        assert conn.execute(text("SELECT count(*) FROM unit")).scalar_one() == 3
    actions = [e["action"] for e in client.get("/api/v1/audit", headers=auth).json()]
    assert actions.count("unit.import") == 2


def test_only_what_is_really_overdue_is_flagged(client: TestClient, auth: dict[str, str], database: Database) -> None:
    r = client.post("/api/v1/units/import", content=GBK_LIST, headers={**auth, "Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    for code, name in (("OLD01", "早已在册"), ("BUSY1", "正在评议"), ("DONE1", "今年已评")):
        client.post("/api/v1/units", json={"code": code, "name": name, "category": "party_gov"}, headers=auth)
    with database.writing() as conn:  # units the service has known for years
        conn.execute(text("UPDATE unit SET created_at = :at WHERE code IN ('OLD01', 'BUSY1', 'DONE1')"),
                     {"at": dt.datetime(2020, 3, 1)})
    open_meeting(client, auth, unit_code="BUSY1", year=2026)
    done = open_meeting(client, auth, unit_code="DONE1", year=2026)
    for code in mint(client, auth, done["id"], 5):
        client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A})
    assert client.post(f"/api/v1/meetings/{done['id']}/close", headers=auth).status_code == 200
    assert _overview(client, auth) == {
        "JL001": (False, True),   # reviewed in 2024, within the window
        "JL002": (False, False),  # new to the service, no past years given: not known to be overdue
        "JL003": (True, True),    # last reviewed in 2021
        "OLD01": (True, True),    # in the service since 2020, never reviewed
        "BUSY1": (False, True),   # its review is in progress
        "DONE1": (False, True),
    }
    page = client.get("/api/v1/overview?year=2026", headers=auth).json()
    assert page["overdue"] == ["OLD01", "JL003"]  # by category, then code
    reviewed = {u["unit_code"]: u["reviewed"] for u in page["units"]}
    assert reviewed["JL001"] == {"2026": False, "2025": False, "2024": True}
    r = client.patch("/api/v1/units/JL003", headers=auth,
                     json={"name": "某银行省分行", "category": "central", "reviewed_years": [2021, 2025]})
    assert r.status_code == 200, r.text
    assert r.json()["reviewed_years"] == [2021, 2025]
    assert _overview(client, auth)["JL003"] == (False, True)


def test_a_unit_without_opened_meetings_can_be_deleted(client: TestClient, auth: dict[str, str],
                                                       database: Database) -> None:
    from app import store

    with database.session() as session:
        demo = store.seed_demo(session=session, year=2026, date=dt.date(2026, 12, 3))
    assert client.delete("/api/v1/units/DEMO001", headers=auth).status_code == 204
    assert client.get(f"/api/v1/meetings/{demo.id}", headers=auth).status_code == 404
    assert "DEMO001" not in _overview(client, auth)
    opened = open_meeting(client, auth, unit_code="JL009")
    r = client.delete("/api/v1/units/JL009", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "unit_in_use")
    assert client.get(f"/api/v1/meetings/{opened['id']}", headers=auth).status_code == 200
    actions = [(e["action"], e["meeting_id"]) for e in client.get("/api/v1/audit", headers=auth).json()]
    assert ("unit.delete", None) in actions
    make_user(database)
    csrf = sign_in(client, "wang")
    client.post("/api/v1/units", json={"code": "X1", "name": "录错的单位", "category": "party_gov"}, headers=auth)
    r = client.post("/units/X1/delete", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert [u["code"] for u in client.get("/api/v1/units", headers=auth).json()] == ["JL009"]
