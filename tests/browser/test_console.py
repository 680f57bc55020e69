"""The organizer's console in a real browser: sign in, a unit, a meeting, 10 cards printed, open, close."""

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

LAPTOP = {"width": 1280, "height": 860}
PASSWORD = "organizer-password-1"


@pytest.fixture(scope="module")
def organizer(server: Server) -> str:
    database = create_database(f"sqlite:///{server.database}")
    with database.session() as session:
        store.create_user(session=session, actor="tests", username="zhang", display_name="张处长",
                          password=PASSWORD, role="admin")
    database.dispose()
    return "zhang"


@pytest.fixture
def laptop(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(8000)
    yield context
    context.close()


def test_a_meeting_from_sign_in_to_close(server: Server, organizer: str, laptop: Any, artifacts: Path) -> None:
    page = laptop.new_page()
    # The console's CSP admits no inline script: anything it blocks is a broken button.
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    page.goto(f"{server.base}/meetings")
    assert page.url.startswith(f"{server.base}/login?next=")
    page.fill("input[name=username]", organizer)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{server.base}/meetings")

    page.click("a:has-text('单位')")
    page.click("a:has-text('添加单位')")
    page.fill("input[name=code]", "JL101")
    page.fill("input[name=name]", "省直机关事务管理局")
    page.select_option("select[name=category]", "party_gov")
    page.click("button:has-text('保存')")
    page.wait_for_url(f"{server.base}/units")
    assert page.locator("p.flash").inner_text() == "已添加单位 JL101 省直机关事务管理局"

    page.click("tr:has-text('JL101') >> a:has-text('安排评议会')")
    page.fill("input[name=title]", "2026年度党建工作述职评议会")
    page.fill("input[name=date]", "2026-12-03")
    page.fill("input[name=attendance]", "10")
    page.screenshot(path=str(artifacts / "console-new-meeting.png"), full_page=True)
    page.click("button:has-text('创建评议会')")
    page.wait_for_url(re.compile(rf"{server.base}/meetings/\d+$"))
    meeting_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("h1").inner_text() == "2026年度党建工作述职评议会"

    # 10 cards for the member representatives, straight to the printable sheet (a new tab)
    page.fill("input[name=count]", "10")
    page.select_option("form[action$='/cards'] select[name=group]", "representatives")
    with laptop.expect_page() as sheet_info:
        page.click("button:has-text('生成并打开打印页')")
    sheet = sheet_info.value
    sheet.wait_for_load_state()
    assert sheet.locator("article.card").count() == 10
    printed = [code.replace("-", "") for code in sheet.locator("article.card p.code").all_inner_texts()]
    sheet.screenshot(path=str(artifacts / "console-cards.png"), full_page=True)
    sheet.emulate_media(media="print")
    sheet.pdf(path=str(artifacts / "console-cards.pdf"), format="A4", print_background=True)
    sheet.close()

    page.reload()
    representatives = page.locator("tr:has-text('党员群众代表') td")
    # Issued and voided per group; how many of a group voted is not shown until close.
    assert [representatives.nth(i).inner_text() for i in (2, 3, 4)] == ["10", "—", "0"]
    page.click("button:has-text('开启评议会，开始投票')")
    # only one group was given cards, and ten of them: no false warning about the other three (#14, 5)
    assert page.locator(".state.big").inner_text() == "进行中"
    assert page.locator("section.warn").count() == 0

    page.click("button:has-text('结束评议会并冻结结果')")
    # the close says how many of the declared attendance have not voted (#14, 6)
    assert "应到 10 人，已投票 0 人，还有 10 人未投票。" in page.locator("#confirm-close").inner_text()
    page.click("button:has-text('确认结束并冻结结果')")
    # Closing with fewer than K ballots would publish those few: the console says so and keeps it open.
    assert "本评议会只有 0 张测评票" in page.locator("[role=alert]").inner_text()
    assert page.locator(".state.big").inner_text() == "进行中"
    for code in printed[:6]:
        body = {"token": code, "answers": {f"p{i:02d}": "AB"[i % 2] for i in range(1, 20)}}
        assert httpx.post(f"{server.base}/api/v1/ballots", json=body, timeout=10).status_code == 201
    page.click("button:has-text('结束评议会并冻结结果')")
    assert "应到 10 人，已投票 6 人，还有 4 人未投票。" in page.locator("#confirm-close").inner_text()
    page.click("button:has-text('确认结束并冻结结果')")
    page.wait_for_selector(".state.big.closed")
    assert page.locator("p.flash").inner_text() == "评议会已结束，结果已冻结（第 1 版，6 张票）"
    representatives = page.locator("tr:has-text('党员群众代表') td")
    assert [representatives.nth(i).inner_text() for i in (2, 3, 4)] == ["10", "6", "0"]
    assert refused == []  # nothing the console's Content-Security-Policy had to stop
    page.screenshot(path=str(artifacts / "console-meeting.png"), full_page=True)

    with server.api() as api:
        meeting = api.get(f"/api/v1/meetings/{meeting_id}").json()
        assert meeting["state"] == "closed"
        actions = [e["action"] for e in api.get("/api/v1/audit", params={"meeting_id": meeting_id}).json()]
    assert actions == ["meeting.close", "meeting.open", "tokens.mint", "meeting.create"]
