"""axe-core on every page (issue #14): no critical or serious violation, phone and console alike.

axe-core comes from the npm registry (tests/browser/package-lock.json, `npm ci` in `make test`) and
reaches each page from that local file through a route on the page's own origin, so that the pages'
Content-Security-Policy (script-src 'self') stays as it is and nothing loads from another host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import store
from app.db import create_database
from app.routes.pages import screen_key
from tests.browser.conftest import PHONE, Server
from tests.conftest import TEST_SECRET

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_PATH = "/__axe-core.js"  # answered by the test's route, never by the service
PASSWORD = "accessibility-password-1"
SERIOUS = ("critical", "serious")


def violations(page: Any, base: str) -> list[str]:
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed: run `npm ci --prefix tests/browser` ({AXE} is missing)")
    page.route(f"{base}{AXE_PATH}", lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=AXE.read_text("utf-8")))
    page.add_script_tag(url=f"{base}{AXE_PATH}")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"] if v["impact"] in SERIOUS
    ]


@pytest.fixture(scope="module")
def closed_meeting(server: Server) -> dict[str, Any]:
    """A closed meeting with ballots and comments, among peers, so that every page has content."""
    database = create_database(f"sqlite:///{server.database}")
    with database.session() as session:
        store.create_user(session=session, actor="tests", username="axe", display_name="无障碍检查",
                          password=PASSWORD, role="admin")
    database.dispose()
    # Of 2025: not a peer of the meetings other browser tests close in 2026 and compare.
    with server.api() as api:
        assert api.post("/api/v1/units", json={"code": "AXE01", "name": "省无障碍检查单位",
                                               "category": "party_gov"}).status_code == 201
        meeting = api.post("/api/v1/meetings", json={"unit_code": "AXE01", "year": 2025, "date": "2025-12-03",
                                                     "title": "2025年度党建工作述职评议会", "attendance": 10}).json()["id"]
        assert api.post(f"/api/v1/meetings/{meeting}/open").status_code == 200
    answers = {f"p{i:02d}": "ABCD"[i % 4] for i in range(1, 20)}
    for n, code in enumerate(server.codes(meeting, 6)):
        body = {"token": code, "answers": answers, "comment": f"建议{n}" if n % 2 else ""}
        assert httpx.post(f"{server.base}/api/v1/ballots", json=body, timeout=10).status_code == 201
    with server.api() as api:
        assert api.post(f"/api/v1/meetings/{meeting}/close").status_code == 200
    return {"id": meeting}


@pytest.fixture
def console(browser: Any, server: Server, closed_meeting: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    context.set_default_timeout(8000)
    page = context.new_page()
    page.goto(f"{server.base}/login")
    assert violations(page, server.base) == []
    page.fill("input[name=username]", "axe")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{server.base}/meetings")
    yield page
    context.close()


CONSOLE_PAGES = [
    "/meetings", "/meetings/new", "/meetings/{closed}", "/meetings/{open}", "/meetings/{closed}/live",
    "/meetings/{open}/live", "/meetings/{open}/projector", "/meetings/{closed}/report", "/units", "/units/new",
    "/units/import", "/overview", "/results", "/ballot-templates", "/ballot-templates/default",
    "/ballot-templates-new", "/accounts", "/api-keys", "/audit", "/account/password", "/meetings/999999",
]


def test_console_pages(server: Server, console: Any, closed_meeting: dict[str, Any]) -> None:
    opened = server.meeting(mode="screen", attendance=10)
    found = {}
    for path in CONSOLE_PAGES:
        url = server.base + path.format(closed=closed_meeting["id"], open=opened)
        console.goto(url)
        found[path] = violations(console, server.base)
    assert {path: problems for path, problems in found.items() if problems} == {}


def test_phone_pages(server: Server, browser: Any, closed_meeting: dict[str, Any]) -> None:
    meeting = server.meeting(mode="screen", attendance=5)
    key = screen_key(TEST_SECRET, meeting)
    cards = server.meeting()
    [code] = server.codes(cards, 1)
    with server.api() as api:
        sheet = api.post(f"/api/v1/meetings/{cards}/cards", json={"count": 2}).text
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
    page = context.new_page()
    found = {}
    for path in (f"/b/{code}", f"/b/{code}?lang=en", "/thanks", "/thanks?again=1", "/c", "/b/K7MQ2X9PAR",
                 f"/s/{key}", "/s/1-nokeynokey", "/no-such-page"):
        page.goto(server.base + path)
        found[path] = violations(page, server.base)
    # the ballot with every point answered and the review open, as a rater sees it before submitting
    page.goto(f"{server.base}/b/{code}")
    for point in range(1, 20):
        page.locator(f"#pt-p{point:02d} label:has(input[value='A']) span").tap()
    page.locator("#send").tap()
    page.locator("#review").wait_for(state="visible")
    found["/b/{code} review"] = violations(page, server.base)
    projector = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    projector.goto(f"{server.base}/s/{key}/screen")
    found["/s/{key}/screen"] = violations(projector, server.base)
    projector.route(f"{server.base}/__sheet", lambda route: route.fulfill(
        status=200, content_type="text/html; charset=utf-8", body=sheet))
    projector.goto(f"{server.base}/__sheet")
    found["card sheet"] = violations(projector, server.base)
    projector.close()
    context.close()
    assert {path: problems for path, problems in found.items() if problems} == {}, json.dumps(found, ensure_ascii=False)


def test_the_check_finds_what_it_should(server: Server, browser: Any) -> None:
    """The harness itself: the old projector page's 15-second meta refresh, and an image without words."""
    page = browser.new_page()
    page.route(f"{server.base}/__bad", lambda route: route.fulfill(
        status=200, content_type="text/html; charset=utf-8",
        body='<!doctype html><html lang="zh-CN"><head><meta http-equiv="refresh" content="15"><title>x</title>'
             '</head><body><main><img src="data:,"></main></body></html>'))
    page.goto(f"{server.base}/__bad")
    found = violations(page, server.base)
    page.close()
    assert [line.split(" (")[0] for line in found] == ["critical: image-alt", "critical: meta-refresh"]
