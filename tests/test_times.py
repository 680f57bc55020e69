"""Times (issue #14, point 7): local time on every page and sheet, ISO 8601 with the offset in the API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from app.db import Database
from app.localtime import as_utc, local_text, zone_label
from app.main import create_app
from app.settings import Settings
from tests.conftest import ALL_A, mint, open_meeting
from tests.test_access import sign_in
from tests.test_console import make_user

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("value", "zone", "seconds", "expected"),
    [
        (dt.datetime(2026, 12, 3, 4, 4, 9), "Asia/Shanghai", False, "2026-12-03 12:04"),
        (dt.datetime(2026, 12, 3, 4, 4, 9, tzinfo=dt.UTC), "Asia/Shanghai", True, "2026-12-03 12:04:09"),
        (dt.datetime(2026, 12, 3, 20, 30), "Asia/Shanghai", False, "2026-12-04 04:30"),
        (dt.datetime(2026, 7, 1, 4, 4), "Europe/Berlin", False, "2026-07-01 06:04"),
        (dt.datetime(2026, 12, 1, 4, 4), "Europe/Berlin", False, "2026-12-01 05:04"),
        (dt.datetime(2026, 12, 3, 12, 4, tzinfo=ZoneInfo("Asia/Shanghai")), "UTC", False, "2026-12-03 04:04"),
    ],
)
def test_local_text(value: dt.datetime, zone: str, seconds: bool, expected: str) -> None:
    assert local_text(value, ZoneInfo(zone), seconds=seconds) == expected


@pytest.mark.parametrize(
    ("zone", "expected"),
    [("Asia/Shanghai", "北京时间"), ("Europe/Berlin", "Europe/Berlin"), ("UTC", "UTC")],
)
def test_zone_label(zone: str, expected: str) -> None:
    assert zone_label(ZoneInfo(zone)) == expected


def test_as_utc_keeps_the_instant() -> None:
    naive = dt.datetime(2026, 12, 3, 4, 4)
    assert as_utc(naive) == dt.datetime(2026, 12, 3, 4, 4, tzinfo=dt.UTC)
    shanghai = dt.datetime(2026, 12, 3, 12, 4, tzinfo=SHANGHAI)
    assert as_utc(shanghai).isoformat() == "2026-12-03T04:04:00+00:00"


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a time zone name"):
        Settings(timezone="Beijing")


def _closed_meeting(client: TestClient, auth: dict[str, str]) -> int:
    meeting = open_meeting(client, auth)
    for code in mint(client, auth, meeting["id"], 5):
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    assert client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).status_code == 200
    return int(meeting["id"])


def _instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    assert value.utcoffset() == dt.timedelta(0)
    return value


def test_the_api_gives_iso_8601_with_the_offset(client: TestClient, auth: dict[str, str]) -> None:
    meeting_id = _closed_meeting(client, auth)
    result = client.get(f"/api/v1/meetings/{meeting_id}/result", headers=auth).json()
    assert result["closed_at"].endswith("Z")
    [record] = client.get("/api/v1/results", headers=auth).json()["results"]
    assert record["closed_at"] == result["closed_at"]
    events = client.get("/api/v1/audit", headers=auth).json()
    assert [e["action"] for e in events][:3] == ["meeting.close", "tokens.mint", "meeting.open"]
    assert all(e["at"].endswith("Z") for e in events)
    [key] = client.get("/api/v1/api-keys", headers=auth).json()
    assert key["created_at"].endswith("Z")


def test_pages_and_sheets_show_beijing_time(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting_id = _closed_meeting(client, auth)
    events = client.get("/api/v1/audit", params={"meeting_id": meeting_id}, headers=auth).json()
    closed = _instant(events[0]["at"].replace("Z", "+00:00"))
    local = closed.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    utc = closed.strftime("%Y-%m-%d %H:%M")
    assert local != utc
    make_user(database)
    sign_in(client, "wang")
    page = client.get(f"/meetings/{meeting_id}").text
    assert local in page and utc not in page
    audit = client.get("/audit").text
    assert "时间（北京时间）" in audit and "UTC" not in audit
    assert local in audit and utc not in audit
    report = client.get(f"/meetings/{meeting_id}/report").text
    assert f"结果冻结于 {local}（北京时间）" in report

    rows = list(csv.reader(io.StringIO(client.get("/api/v1/results?format=csv", headers=auth).text.lstrip("\ufeff"))))
    column = rows[0].index("结束时间（北京时间） Closed at (Asia/Shanghai)")
    seconds = closed.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    assert rows[1][column] == seconds
    assert not [header for header in rows[0] if "UTC" in header]
    book = load_workbook(io.BytesIO(client.get("/api/v1/results?format=xlsx", headers=auth).content))
    sheet = book.worksheets[0]
    headers = [cell.value for cell in sheet[1]]
    assert sheet.cell(row=2, column=headers.index("结束时间（北京时间） Closed at (Asia/Shanghai)") + 1).value == seconds


def test_the_zone_is_a_setting(settings: Settings, database: Database, auth: dict[str, str]) -> None:
    berlin = settings.model_copy(update={"timezone": "Europe/Berlin"})
    with TestClient(create_app(berlin, database)) as client:
        meeting_id = _closed_meeting(client, auth)
        events = client.get("/api/v1/audit", params={"meeting_id": meeting_id}, headers=auth).json()
        closed = _instant(events[0]["at"].replace("Z", "+00:00"))
        make_user(database)
        sign_in(client, "wang")
        page = client.get(f"/meetings/{meeting_id}").text
        assert closed.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M") in page
        assert "时间（Europe/Berlin）" in client.get("/audit").text
