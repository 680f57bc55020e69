"""The live dashboard in a real browser: pushed turnout, figures in steps of K, projector, report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import store
from app.db import create_database
from tests.browser.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 900}
PASSWORD = "dashboard-password-1"
GRADES = "ABCD"


def answers(n: int) -> dict[str, str]:
    return {f"p{i:02d}": GRADES[(n + i * (n % 3 + 1)) % 3] for i in range(1, 20)}


def vote(server: Server, codes: list[str], start: int) -> None:
    for n, code in enumerate(codes, start=start):
        body = {"token": code, "answers": answers(n), "comment": f"建议加强第{n}项工作" if n % 4 == 0 else ""}
        assert httpx.post(f"{server.base}/api/v1/ballots", json=body, timeout=10).status_code == 201


def test_dashboard_projector_and_report(server: Server, browser: Any, artifacts: Path) -> None:
    database = create_database(f"sqlite:///{server.database}")
    with database.session() as session:
        store.create_user(session=session, actor="tests", username="li", display_name="李书记",
                          password=PASSWORD, role="admin")
    database.dispose()
    # four peers in the same category and year, closed, so that the report can compare
    for n in range(4):
        peer = server.meeting(title=f"同类单位评议会 {n + 1}")
        vote(server, server.codes(peer, 6), start=10 * n)
        with server.api() as api:
            assert api.post(f"/api/v1/meetings/{peer}/close").status_code == 200

    meeting_id = server.meeting(attendance=30)
    codes = server.codes(meeting_id, 14)
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(8000)
    refused: list[str] = []  # anything the console's CSP blocks: none of its pages may need it
    context.on("console", lambda message: refused.append(message.text)
               if "Content Security Policy" in message.text else None)
    page = context.new_page()
    page.goto(f"{server.base}/login")
    page.fill("input[name=username]", "li")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.goto(f"{server.base}/meetings/{meeting_id}/live")
    counted = page.locator('#turnout [data-live="ballots_counted"]')
    assert counted.inner_text() == "0"

    vote(server, codes[:4], start=100)
    page.wait_for_function("() => document.querySelector('#turnout [data-live=\"ballots_counted\"]').textContent === '4'")
    assert "至少 10 张票投出后才显示得分" in page.locator("#figures").inner_text()
    assert page.locator("#figures svg.chart").count() == 0

    vote(server, codes[4:12], start=104)
    page.wait_for_function("() => document.querySelector('#turnout [data-live=\"ballots_counted\"]').textContent === '12'")
    # 2K = 10 waited sealed at the tenth ballot: all but K were mixed, and the figures moved once.
    page.wait_for_function("() => document.getElementById('figures').dataset.published === '5'")
    assert page.locator("#figures svg.chart").count() == 3
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

    projector = context.new_page()
    projector.set_viewport_size({"width": 1280, "height": 720})
    projector.goto(f"{server.base}/meetings/{meeting_id}/projector?scores=1")
    assert projector.locator('[data-live="ballots_counted"]').inner_text() == "12"
    projector.screenshot(path=str(artifacts / "projector.png"))

    vote(server, codes[12:], start=112)
    with server.api() as api:
        assert api.post(f"/api/v1/meetings/{meeting_id}/close").status_code == 200
    page.wait_for_function("() => document.getElementById('figures').dataset.state === 'closed'")
    assert page.locator("#figures").inner_text().count("建议加强") == 4  # ballots 100, 104, 108, 112

    with server.api() as api:
        category = api.get(f"/api/v1/meetings/{meeting_id}").json()["category"]
        peers = api.get("/api/v1/results", params={"year": 2026, "category": category}).json()["results"]
    page.goto(f"{server.base}/meetings/{meeting_id}/report")
    # Ranked among the closed meetings of its category and year (other test modules close some too).
    assert len(peers) >= 5
    assert page.locator(".stats b").nth(2).inner_text().endswith(f"/ {len(peers)}")
    assert page.locator("tr.weakest").count() == 3
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    page.emulate_media(media="print")
    pdf = page.pdf(path=str(artifacts / "report.pdf"), format="A4", print_background=True)
    # Two A4 pages (issue #14, point 9): not a header alone on page 1 and the points running to page 3.
    assert len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf)) == 2
    context.close()
    assert refused == []
