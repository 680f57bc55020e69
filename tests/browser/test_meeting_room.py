"""A real meeting in the organizer's hands (issue #14), in Debian's Chromium: the projector screen
run from the console and kept current by the push (point 1)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import store
from app.db import create_database
from tests.browser.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

LAPTOP = {"width": 1366, "height": 768}
PROJECTOR = {"width": 1920, "height": 1080}
PASSWORD = "meeting-room-password-1"
ALL_B = {f"p{i:02d}": "B" for i in range(1, 20)}


@pytest.fixture(scope="module")
def organizer(server: Server) -> str:
    database = create_database(f"sqlite:///{server.database}")
    with database.session() as session:
        store.create_user(session=session, actor="tests", username="zhao", display_name="赵处长",
                          password=PASSWORD, role="admin")
    database.dispose()
    return "zhao"


@pytest.fixture
def laptop(browser: Any, organizer: str, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(8000)
    page = context.new_page()
    page.goto(f"{server.base}/login")
    page.fill("input[name=username]", organizer)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{server.base}/meetings")
    page.close()
    yield context
    context.close()


def claim_and_vote(server: Server, claim_url: str, *, vote: bool) -> None:
    with httpx.Client(timeout=10) as phone:
        r = phone.post(claim_url, follow_redirects=False)
        assert r.status_code == 303, r.text
        code = r.headers["location"].rsplit("/", 1)[1]
        if vote:
            r = phone.post(f"{server.base}/api/v1/ballots", json={"token": code, "answers": ALL_B})
            assert r.status_code == 201, r.text


def test_the_projector_screen_from_the_console(server: Server, laptop: Any, artifacts: Path) -> None:
    meeting = server.meeting(mode="screen", attendance=30)
    page = laptop.new_page()
    page.goto(f"{server.base}/meetings/{meeting}")
    with laptop.expect_page() as opened:
        page.click("a:has-text('投影二维码')")  # one click from the meeting page
    screen = opened.value
    screen.set_viewport_size(PROJECTOR)
    screen.wait_for_load_state()
    assert screen.locator("meta[http-equiv=refresh]").count() == 0
    assert screen.locator("h1").inner_text() == "省机关事务管理局"  # the unit, not the year's common title
    assert screen.locator(".code svg").count() == 1
    join = screen.locator(".url").inner_text()
    assert re.fullmatch(r"127\.0\.0\.1:\d+/s/\d+-[a-z0-9]{10}", join)
    claim_url = f"http://{join}"
    counts = {name: screen.locator(f'[data-live="{name}"]') for name in ("claimed", "ballots_counted", "attendance")}
    assert [counts[n].inner_text() for n in counts] == ["0", "0", "30"]
    expect(screen.locator("#live-status")).to_have_attribute("data-connected", "1")

    for n in range(3):
        claim_and_vote(server, claim_url, vote=n < 2)
    # The push, not a reload: the same document shows the new figures.
    screen.evaluate("() => { window.notReloaded = true; }")
    expect(counts["claimed"]).to_have_text("3")
    expect(counts["ballots_counted"]).to_have_text("2")
    assert screen.evaluate("() => window.notReloaded") is True
    layout = screen.evaluate("""() => ({
        qr: document.querySelector('.code svg').getBoundingClientRect().height,
        unit: parseFloat(getComputedStyle(document.querySelector('h1')).fontSize),
        counts: parseFloat(getComputedStyle(document.querySelector('[data-live="claimed"]')).fontSize),
        scroll: document.documentElement.scrollHeight, height: innerHeight })""")
    assert layout["qr"] >= 500 and layout["unit"] >= 48 and layout["counts"] >= 48, layout
    assert layout["scroll"] <= layout["height"], layout  # one screen, nothing below the fold
    screen.screenshot(path=artifacts / "screen-page.png")
    text = screen.locator("body").inner_text()
    assert "得分" not in text  # no score on the projector while the meeting is open

    page.goto(f"{server.base}/meetings/{meeting}/live")
    assert page.locator("a:has-text('投影二维码')").get_attribute("href") == screen.url.removeprefix(server.base)
    screen.close()
