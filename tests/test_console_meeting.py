"""The meeting in the organizer's hands (issue #14, points 5, 6 and 10): warnings that are true,
defaults that fit, every group's cards in one job, a close that says who has not voted, and
Chinese where Chinese belongs."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db import Database
from app.labels import actor_label, detail_text
from tests.conftest import ALL_A
from tests.test_access import sign_in
from tests.test_console import make_user


def _unit_and_meeting(client: TestClient, csrf: str, **form: str) -> int:
    r = client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "省直机关事务管理局",
                                        "category": "party_gov"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    fields = {"csrf": csrf, "unit_code": "JL001", "title": "述职评议会", "year": "2026", "date": "2026-12-03",
              "mode": "cards", "attendance": "40", "template": "default:1", "trim": "1",
              "component_weight": "0.4", "flagged_rule": "count",
              "group_key_0": "leaders", "group_name_0": "党组（党委）班子成员",
              "group_key_1": "committee", "group_name_1": "机关党委委员",
              "group_key_2": "secretaries", "group_name_2": "基层党组织书记",
              "group_key_3": "representatives", "group_name_3": "党员群众代表", **form}
    r = client.post("/meetings/new", data=fields, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def test_cards_without_groups_open_without_a_warning(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    meeting = _unit_and_meeting(client, csrf)
    page = client.get(f"/meetings/{meeting}").text
    assert re.search(r'<input type="number" name="count"[^>]* value="40"', page)  # the declared attendance
    sheet = client.post(f"/meetings/{meeting}/cards", data={"csrf": csrf, "count": "40", "group": ""})
    assert sheet.status_code == 201
    r = client.post(f"/meetings/{meeting}/open", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"/api/v1/meetings/{meeting}").json()["state"] == "open"


def test_the_warning_names_only_groups_given_too_few_cards(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    meeting = _unit_and_meeting(client, csrf)
    assert client.post(f"/meetings/{meeting}/cards", data={"csrf": csrf, "count": "3", "group": "leaders"}).status_code == 201
    assert client.post(f"/meetings/{meeting}/cards", data={"csrf": csrf, "count": "20",
                                                           "group": "representatives"}).status_code == 201
    r = client.post(f"/meetings/{meeting}/open", data={"csrf": csrf})
    assert r.status_code == 409
    warning = re.search(r'<section class="card warn" role="alert">(.*?)</section>', r.text, re.S)
    assert warning is not None
    items = re.findall(r"<li>(.*?)</li>", warning.group(1))
    assert items == ["党组（党委）班子成员：3 张"]


def test_every_groups_cards_in_one_job(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    meeting = _unit_and_meeting(client, csrf)
    counts = {"leaders": "5", "committee": "5", "secretaries": "6", "representatives": "10"}
    sheet = client.post(f"/meetings/{meeting}/cards/all",
                        data={"csrf": csrf, **{f"count_{key}": n for key, n in counts.items()}})
    assert sheet.status_code == 201
    assert sheet.text.count('<article class="card') == 26
    assert [sheet.text.count(f'class="card band-{band}"') for band in range(4)] == [5, 5, 6, 10]
    with database.reading() as conn:
        rows = conn.execute(text("SELECT group_key, count(*) FROM ballot_token WHERE meeting_id = :m "
                                 "GROUP BY group_key ORDER BY group_key"), {"m": meeting}).all()
    assert [tuple(row) for row in rows] == [("committee", 5), ("leaders", 5), ("representatives", 10),
                                            ("secretaries", 6)]
    r = client.post(f"/meetings/{meeting}/cards/all", data={"csrf": csrf, "count_leaders": "0"})
    assert r.status_code == 422
    assert "请至少为一个类别填写张数" in r.text
    with database.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM ballot_token")).scalar_one() == 26


def test_cards_for_every_group_through_the_api(client: TestClient, auth: dict[str, str]) -> None:
    client.post("/api/v1/units", json={"code": "JL001", "name": "甲", "category": "party_gov"}, headers=auth)
    meeting = client.post("/api/v1/meetings", headers=auth, json={
        "unit_code": "JL001", "year": 2026, "date": "2026-12-03", "title": "述职评议会", "attendance": 30}).json()
    r = client.post(f"/api/v1/meetings/{meeting['id']}/cards", headers=auth,
                    json={"groups": {"leaders": 2, "representatives": 3}})
    assert r.status_code == 201
    assert r.text.count('<article class="card') == 5
    r = client.post(f"/api/v1/meetings/{meeting['id']}/cards", headers=auth, json={"groups": {"nobody": 2}})
    assert r.status_code == 422
    assert r.json()["code"] == "meeting_unknown_group"


def test_new_meeting_title_comes_from_unit_and_year(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    client.post("/units/new", data={"csrf": csrf, "code": "JL001", "name": "省直机关事务管理局", "category": "party_gov"})
    year = dt.date.today().year
    page = client.get("/meetings/new?unit=JL001").text
    assert f'value="省直机关事务管理局{year}年度党建工作述职评议会"' in page
    r = client.post("/meetings/new", follow_redirects=False, data={
        "csrf": csrf, "unit_code": "JL001", "title": "", "year": "2025", "date": "2025-12-03", "mode": "cards",
        "attendance": "30", "template": "default:1", "group_name_0": "班子成员"})
    assert r.status_code == 303, r.text
    meeting = client.get(f"/api/v1/meetings/{r.headers['location'].rsplit('/', 1)[1]}").json()
    assert meeting["title"] == "省直机关事务管理局2025年度党建工作述职评议会"
    assert [(g["key"], g["name"]) for g in meeting["groups"]] == [("g1", "班子成员")]


def test_the_close_says_how_many_have_not_voted(client: TestClient, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    meeting = _unit_and_meeting(client, csrf)
    sheet = client.post(f"/meetings/{meeting}/cards", data={"csrf": csrf, "count": "40", "group": ""}).text
    codes = [code.replace("-", "").replace(" ", "") for code in re.findall(r'<p class="code">([^<]+)</p>', sheet)]
    client.post(f"/meetings/{meeting}/open", data={"csrf": csrf})
    for code in codes[:33]:
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    r = client.post(f"/meetings/{meeting}/close", data={"csrf": csrf})
    assert r.status_code == 200
    assert "应到 40 人，已投票 33 人，还有 7 人未投票。" in r.text
    assert client.get(f"/api/v1/meetings/{meeting}").json()["state"] == "open"
    r = client.post(f"/meetings/{meeting}/close", data={"csrf": csrf, "confirm": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"/api/v1/meetings/{meeting}").json()["state"] == "closed"


def test_chinese_where_chinese_belongs(client: TestClient, database: Database, auth: dict[str, str]) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    meeting = _unit_and_meeting(client, csrf)
    client.post(f"/meetings/{meeting}/cards", data={"csrf": csrf, "count": "10", "group": "representatives"})
    page = client.get(f"/meetings/{meeting}").text
    assert "模板 党建工作述职评议测评票 第 1 版" in page
    assert "default" not in page
    assert "王主任 · 管理员" in page
    assert "user:" not in page
    form = client.get("/meetings/new").text
    assert "党建工作述职评议测评票（第 1 版）" in form and "default 第" not in form
    visible_keys = re.findall(r'<input(?![^>]*type="hidden")[^>]*name="group_key_\d+"', form)
    assert visible_keys == []
    audit = client.get(f"/audit?meeting={meeting}").text
    assert "张数 10；评议人类别 党员群众代表" in audit
    assert "王主任（wang）" in audit
    assert "{&#34;" not in audit and '{"' not in audit and ">user:wang" not in audit


def test_actor_and_detail_labels() -> None:
    names = {"wang": "王主任"}
    assert actor_label("user:wang", names) == "王主任（wang）"
    assert actor_label("user:gone", names) == "gone"
    assert actor_label("api:first-admin", names) == "API 密钥“first-admin”"
    assert actor_label("system:cli", names) == "服务器命令行"
    assert actor_label("system:seed", names) == "系统（首次启动）"
    groups = {"representatives": "党员群众代表", "party_gov": "党政机关"}
    assert detail_text({"count": 10, "group": "representatives"}, groups) == "张数 10；评议人类别 党员群众代表"
    assert detail_text({"count": 40, "group": None}, groups) == "张数 40；评议人类别 不区分类别"
    assert detail_text({"reason": "计票有误"}, groups) == "理由 计票有误"
    assert (detail_text({"version": 2, "ballots": 33, "digest": "9f2c6a0d3b1e4f5a" + "0" * 48}, groups)
            == "结果版本 第 2 版；票数 33；核验码 9F2C-6A0D-3B1E")
    assert (detail_text({"code": "JL001", "before": {"name": "甲", "category": "party_gov"},
                                        "after": {"name": "乙", "category": "party_gov"}}, groups)
            == "单位编码 JL001；修改前 名称 甲，类别 党政机关；修改后 名称 乙，类别 党政机关")
    assert detail_text({}, groups) == ""


def test_a_draft_is_deleted_after_a_confirmation_and_an_open_meeting_is_voided_with_a_reason(
    client: TestClient, database: Database
) -> None:
    """Issue #12, point 3, in the console."""
    make_user(database)
    csrf = sign_in(client, "wang")
    draft = _unit_and_meeting(client, csrf)
    first = client.post(f"/meetings/{draft}/delete", data={"csrf": csrf})
    assert first.status_code == 200 and "删除后无法恢复" in first.text
    assert client.get(f"/api/v1/meetings/{draft}").status_code == 200  # nothing deleted yet
    r = client.post(f"/meetings/{draft}/delete", data={"csrf": csrf, "confirm": "1"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/meetings")
    assert client.get(f"/api/v1/meetings/{draft}").status_code == 404

    r = client.post("/meetings/new", follow_redirects=False, data={
        "csrf": csrf, "unit_code": "JL001", "title": "述职评议会", "year": "2026", "date": "2026-12-03",
        "mode": "cards", "attendance": "40", "template": "default:1", "trim": "1", "component_weight": "0.4",
        "flagged_rule": "count", "group_key_0": "all", "group_name_0": "全体"})
    meeting = int(r.headers["location"].rsplit("/", 1)[1])
    assert client.post(f"/meetings/{meeting}/open", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    refused = client.post(f"/meetings/{meeting}/void-meeting", data={"csrf": csrf, "reason": "  "})
    assert refused.status_code == 422 and "作废评议会需要填写书面理由" in refused.text
    assert client.get(f"/api/v1/meetings/{meeting}").json()["state"] == "open"
    r = client.post(f"/meetings/{meeting}/void-meeting", data={"csrf": csrf, "reason": "设备故障，另行组织"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/meetings/{meeting}").text
    assert "本场评议会已作废，不计入结果，也不再接受投票。理由：设备故障，另行组织" in page
    assert '<span class="state big voided">已作废</span>' in page
    assert f'action="/meetings/{meeting}/void-meeting"' not in page
