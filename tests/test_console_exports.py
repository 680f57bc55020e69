"""Excel and CSV downloads in the console (issue #14, point 8): on the meeting, results and year
overview pages, for whoever may see the category, as the API's exports are for the main system."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from app.db import Database
from tests.conftest import ALL_A, mint, open_meeting
from tests.test_access import sign_in
from tests.test_console import make_user

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _closed(client: TestClient, auth: dict[str, str], unit: str, category: str = "party_gov") -> int:
    client.post("/api/v1/units", json={"code": unit, "name": f"{unit}单位", "category": category}, headers=auth)
    meeting = open_meeting(client, auth, unit_code=unit)
    for code in mint(client, auth, meeting["id"], 5):
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    assert client.post(f"/api/v1/meetings/{meeting['id']}/close", headers=auth).status_code == 200
    return int(meeting["id"])


def test_downloads_on_the_meeting_results_and_overview_pages(client: TestClient, auth: dict[str, str],
                                                             database: Database) -> None:
    mine = _closed(client, auth, "JL001")
    other = _closed(client, auth, "C001", "central")
    make_user(database, "li", role="viewer", categories=("party_gov",))
    sign_in(client, "li")

    meeting_page = client.get(f"/meetings/{mine}").text
    assert f'href="/exports/results.xlsx?meeting={mine}"' in meeting_page
    assert f'href="/exports/results.csv?meeting={mine}"' in meeting_page
    results_page = client.get("/results?year=2026").text
    assert "JL001单位" in results_page and "C001单位" not in results_page  # another category: not shown
    assert 'href="/exports/results.xlsx?year=2026"' in results_page
    assert 'href="/exports/results.csv?year=2026"' in results_page
    overview_page = client.get("/overview?year=2026").text
    assert 'href="/exports/overview.xlsx?year=2026"' in overview_page
    assert 'href="/exports/overview.csv?year=2026"' in overview_page

    r = client.get(f"/exports/results.xlsx?meeting={mine}")
    assert (r.status_code, r.headers["content-type"]) == (200, XLSX)
    assert r.headers["content-disposition"] == f'attachment; filename="results-meeting-{mine}.xlsx"'
    book = load_workbook(io.BytesIO(r.content))
    assert [ws.title for ws in book.worksheets] == ["结果 Results", "要点平均分 Point averages", "评议人类别 Rater groups"]
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert (rows[1][0], rows[1][18]) == ("JL001", 100)
    assert len(rows) == 2
    r = client.get("/exports/results.csv?year=2026")
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row[0] for row in table[1:]] == ["JL001"]  # the viewer's category only
    assert client.get(f"/exports/results.csv?meeting={other}").status_code == 403

    r = client.get("/exports/overview.csv?year=2026")
    assert r.status_code == 200
    overview = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert overview[0][:3] == ["单位编码 Unit code", "单位名称 Unit name", "类别 Category"]
    assert [(row[0], row[-1]) for row in overview[1:]] == [("JL001", "否 no")]
    book = load_workbook(io.BytesIO(client.get("/exports/overview.xlsx?year=2026").content))
    assert book.worksheets[0].title == "年度总览 Overview 2026"


def test_report_page_offers_the_downloads_too(client: TestClient, auth: dict[str, str], database: Database) -> None:
    mine = _closed(client, auth, "JL001")
    make_user(database)
    sign_in(client, "wang")
    page = client.get(f"/meetings/{mine}/report").text
    assert re.search(rf'<p class="no-print[^"]*">.*href="/exports/results.xlsx\?meeting={mine}"', page, re.S)
