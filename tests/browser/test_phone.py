"""The panel member's phone in real headless Chromium at 360 x 640 (issue #3).

Each test drives the pages as a rater would (taps on the grade buttons, the submit button) and
then checks the ballot box itself, read straight from the server's database file.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.i18n import message
from app.routes.pages import screen_key
from app.templates import default_template, point_scores
from tests.browser.conftest import PHONE, Server
from tests.conftest import TEST_SECRET

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POINTS = default_template().point_ids()
# A ballot that uses every grade, so that a wrong score for any of them changes the total.
VARIED = {point: "ABCD"[index % 4] for index, point in enumerate(POINTS)}
VARIED_TOTAL = sum(point_scores(default_template(), VARIED).values(), Decimal(0))


def plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def tap(page: Any, answers: dict[str, str]) -> None:
    """One tap per point, on the visible button, as a thumb would."""
    for point, grade in answers.items():
        page.locator(f"#pt-{point} label:has(input[value='{grade}']) span").tap()


def checked(page: Any) -> dict[str, str]:
    return page.evaluate(  # type: ignore[no-any-return]
        "() => Object.fromEntries([...document.querySelectorAll('#ballot input:checked')]"
        ".map(i => [i.name, i.value]))"
    )


def test_fill_and_submit_a_default_ballot(
    server: Server, phone: Any, artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    page = phone.new_page()
    page.goto(f"{server.base}/b/{code}")

    layout = page.evaluate(
        """() => ({
            scroll: document.documentElement.scrollWidth,
            buttons: Math.min(...[...document.querySelectorAll('.grades span')]
                .map(s => s.getBoundingClientRect().height)),
            heading: Math.min(...[...document.querySelectorAll('h2, legend')]
                .map(e => parseFloat(getComputedStyle(e).fontSize))),
            count: document.querySelectorAll('.grades span').length,
        })"""
    )
    assert layout["scroll"] == PHONE["width"]  # no sideways scrolling
    assert layout["count"] == 19 * 4
    assert layout["buttons"] >= 44
    assert layout["heading"] >= 16
    assert page.locator("#left").inner_text() == message("left", n=19)
    english = phone.new_page()
    english.goto(f"{server.base}/b/{code}?lang=en")
    assert english.evaluate("() => document.documentElement.scrollWidth") == PHONE["width"]
    assert english.locator("#send").inner_text() == message("submit", "en")
    english.close()

    tap(page, VARIED)
    assert page.locator("#total").inner_text() == plain(VARIED_TOTAL) == "63.7"
    assert page.locator("#left").inner_text() == message("all_answered")
    page.locator("#comment").fill("希望加强基层党组织建设")
    page.screenshot(path=artifacts / "ballot-page-full.png", full_page=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=artifacts / "ballot-page.png")

    page.locator("#send").tap()
    page.locator("#review").wait_for(state="visible")
    page.locator("#confirm").tap()
    page.wait_for_url(f"{server.base}/thanks")
    assert page.locator("h1").inner_text() == message("thanks_counted")
    assert page.locator("main").inner_text().count(message("thanks_anonymous")) == 1
    page.screenshot(path=artifacts / "thanks-page.png", full_page=True)

    assert server.ballots(meeting) == [(json.dumps(VARIED, sort_keys=True, separators=(",", ":")),
                                        "希望加强基层党组织建设")]
    assert page.evaluate(f"() => localStorage.getItem('ob:draft:{code}')") is None
    # A draft left behind by a lost answer goes once the phone sees its ballot was counted.
    page.evaluate(f"() => localStorage.setItem('ob:draft:{code}', '{{}}')")
    page.goto(f"{server.base}/b/{code}")
    assert page.locator("h1").inner_text() == message("spent_title")
    page.wait_for_function(f"() => localStorage.getItem('ob:draft:{code}') === null")

    # The real access log of all that, through the service's filter: paths yes, code and phone no.
    lines = [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]
    assert '- - "GET /b/… HTTP/1.1" 200' in lines
    assert '- - "POST /api/v1/ballots HTTP/1.1" 201' in lines
    assert not [line for line in lines if code in line or ("127.0.0.1" in line and "/b/" in line)]


def test_unanswered_are_marked_and_the_draft_survives_a_reload(server: Server, phone: Any) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    page = phone.new_page()
    page.goto(f"{server.base}/b/{code}")
    first_half = dict(list(VARIED.items())[:10])
    tap(page, first_half)
    page.locator("#send").tap()

    assert page.locator("#status").inner_text() == message("missing_js", n=9)
    assert page.locator(".point.missing").count() == 9
    assert page.locator(".point.missing").first.get_attribute("id") == "pt-p11"
    assert page.locator("#pt-p11").is_visible()
    in_view = page.evaluate("() => { const r = document.getElementById('pt-p11').getBoundingClientRect();"
                            " return r.top >= 0 && r.bottom <= innerHeight; }")
    assert in_view is True

    page.reload()
    assert checked(page) == first_half
    assert page.locator("#restored").is_visible()
    assert page.locator("#left").inner_text() == message("left", n=9)
    assert server.ballots(meeting) == []


def test_a_double_submit_counts_once(server: Server, browser: Any) -> None:
    """Two tabs on one code (a reload, WeChat reopening): the second lands on "already counted"."""
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    tabs = []
    for _ in range(2):
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
        page = context.new_page()
        page.goto(f"{server.base}/b/{code}")
        tap(page, VARIED)
        tabs.append(page)
    tabs[0].locator("#send").tap()
    tabs[0].evaluate("() => { const b = document.getElementById('confirm'); b.click(); b.click(); }")
    tabs[0].wait_for_url(f"{server.base}/thanks")
    tabs[1].locator("#send").tap()
    tabs[1].locator("#confirm").tap()
    tabs[1].wait_for_url(f"{server.base}/thanks?again=1")
    assert tabs[1].locator("h1").inner_text() == message("thanks_already")
    assert len(server.ballots(meeting)) == 1
    for page in tabs:
        page.context.close()


def test_offline_submit_keeps_the_answers_and_sends_them_later(server: Server, phone: Any) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    page = phone.new_page()
    page.goto(f"{server.base}/b/{code}")
    tap(page, VARIED)

    phone.set_offline(True)
    page.locator("#send").tap()
    page.locator("#confirm").tap()
    page.locator("#retry").wait_for(state="visible")
    assert page.locator("#status").inner_text() == message("send_offline")
    assert checked(page) == VARIED
    stored = json.loads(page.evaluate(f"() => localStorage.getItem('ob:draft:{code}')"))
    assert stored == {"a": VARIED, "c": ""}
    assert server.ballots(meeting) == []

    phone.set_offline(False)
    page.locator("#retry").tap()
    page.wait_for_url(f"{server.base}/thanks")
    assert page.locator("h1").inner_text() == message("thanks_counted")
    assert len(server.ballots(meeting)) == 1


# ---- issue #14, points 2 and 3 -------------------------------------------------------------------


def test_review_of_every_grade_before_the_final_submit(server: Server, phone: Any, artifacts: Path) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    page = phone.new_page()
    page.goto(f"{server.base}/b/{code}")
    assert page.locator("#review").is_hidden()
    tap(page, VARIED)
    page.locator("#send").tap()
    page.locator("#review").wait_for(state="visible")
    labels = {"A": "好", "B": "较好", "C": "一般", "D": "差"}
    rows = page.locator("#review-list li").all_inner_texts()
    assert [" ".join(row.split()) for row in rows] == [
        f"{n} {labels[VARIED[point]]}" for n, point in enumerate(POINTS, start=1)]
    assert page.locator("#review-total").inner_text() == "63.7"
    page.locator("#review").screenshot(path=artifacts / "ballot-review.png")
    assert server.ballots(meeting) == []
    # Back to change one point: the review goes, and comes back with the change.
    page.locator("#back").tap()
    assert page.locator("#review").is_hidden()
    page.locator("#pt-p01 label:has(input[value='D']) span").tap()
    page.locator("#send").tap()
    assert page.locator("#review-list li").first.inner_text().split() == ["1", "差"]
    page.locator("#confirm").tap()
    page.wait_for_url(f"{server.base}/thanks")
    assert len(server.ballots(meeting)) == 1


SUBMIT_TIMEOUT_MS = 20_000


def test_a_submit_that_never_gets_an_answer_gives_up_and_keeps_the_answers(server: Server, phone: Any) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    page = phone.new_page()
    page.clock.install()
    held: list[Any] = []
    page.route("**/api/v1/ballots", lambda route: held.append(route))  # bad Wi-Fi: no answer, ever
    page.goto(f"{server.base}/b/{code}")
    tap(page, VARIED)
    page.locator("#send").tap()
    page.locator("#confirm").tap()
    assert page.locator("#status").inner_text() == message("sending")
    assert len(held) == 1
    page.clock.run_for(SUBMIT_TIMEOUT_MS - 1000)
    assert page.locator("#status").inner_text() == message("sending")
    page.clock.run_for(2000)
    assert page.locator("#status").inner_text() == message("send_timeout", seconds=SUBMIT_TIMEOUT_MS // 1000)
    assert page.locator("#retry").is_visible()
    assert page.locator("#send").is_enabled()
    assert json.loads(page.evaluate(f"() => localStorage.getItem('ob:draft:{code}')")) == {"a": VARIED, "c": ""}
    assert server.ballots(meeting) == []
    page.unroute("**/api/v1/ballots")
    page.locator("#retry").tap()
    page.wait_for_url(f"{server.base}/thanks")
    assert len(server.ballots(meeting)) == 1


def test_a_submit_after_close_says_the_meeting_has_closed(server: Server, phone: Any) -> None:
    meeting = server.meeting()
    [code, *others] = server.codes(meeting, 6)
    page = phone.new_page()
    page.goto(f"{server.base}/b/{code}")
    tap(page, VARIED)
    with server.api() as api:
        for other in others:  # a meeting closes with K ballots
            assert api.post("/api/v1/ballots", json={"token": other, "answers": VARIED}).status_code == 201
        assert api.post(f"/api/v1/meetings/{meeting}/close").status_code == 200
    page.locator("#send").tap()
    page.locator("#confirm").tap()
    page.locator("#status.bad").wait_for()
    assert page.locator("#status").inner_text() == message("send_closed")
    assert page.locator("#retry").is_hidden()
    assert len(server.ballots(meeting)) == 5


# 320 px phones, and a 360 px phone at 200 % zoom (180 CSS pixels wide), and WeChat's larger text.
NARROW = [({"width": 320, "height": 568}, 1.0), ({"width": 180, "height": 320}, 1.0),
          ({"width": 360, "height": 640}, 1.3)]


@pytest.mark.parametrize(("viewport", "text_scale"), NARROW, ids=["320px", "360px-at-200%", "360px-large-text"])
def test_small_phones_and_large_text(server: Server, browser: Any, artifacts: Path,
                                     viewport: dict[str, int], text_scale: float) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    context = browser.new_context(viewport=viewport, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="zh-CN")
    page = context.new_page()
    page.goto(f"{server.base}/b/{code}")
    if text_scale != 1.0:  # as WeChat's own font-size setting does: every text larger, the page as wide
        page.evaluate(f"""() => {{
            const all = [...document.querySelectorAll('html, body, body *')];
            const sizes = all.map(e => parseFloat(getComputedStyle(e).fontSize));
            all.forEach((e, i) => {{ e.style.fontSize = (sizes[i] * {text_scale}) + 'px'; }});
        }}""")
    tap(page, {"p01": "B", "p02": "A"})
    layout = page.evaluate(
        """() => {
            const spans = [...document.querySelectorAll('#pt-p01 .grades span')];
            const rects = spans.map(s => s.getBoundingClientRect());
            const checked = document.querySelector('#pt-p01 input:checked + span');
            const tick = getComputedStyle(checked, '::before');
            const box = checked.getBoundingClientRect();
            const tickRect = {left: box.left + parseFloat(tick.left) + parseFloat(tick.marginLeft),
                              top: box.top + parseFloat(tick.top),
                              width: parseFloat(tick.width), height: parseFloat(tick.height)};
            const range = document.createRange();
            range.selectNodeContents(checked.firstChild);
            const label = range.getBoundingClientRect();
            const bar = document.getElementById('bar').getBoundingClientRect();
            return {
                scroll: document.documentElement.scrollWidth, width: innerWidth, height: innerHeight,
                rows: new Set(rects.map(r => Math.round(r.top))).size,
                columns: new Set(rects.map(r => Math.round(r.left))).size,
                spill: [...document.querySelectorAll('.grades span, .grades small, legend')]
                    .filter(e => e.scrollWidth > e.clientWidth + 1).length,
                overlap: !(tickRect.left + tickRect.width <= label.left || label.right <= tickRect.left
                           || tickRect.top + tickRect.height <= label.top || label.bottom <= tickRect.top),
                bar: bar.height,
                tap: Math.min(...rects.map(r => r.height)),
            };
        }"""
    )
    name = f"ballot-{viewport['width']}x{viewport['height']}-{text_scale}.png"
    page.screenshot(path=artifacts / name)
    assert layout["scroll"] == layout["width"], layout  # nothing spills sideways
    assert (layout["rows"], layout["columns"]) == (2, 2), layout  # the grades two by two
    assert layout["spill"] == 0, str(layout)
    assert layout["overlap"] is False, str(layout)
    assert layout["tap"] >= 44, layout
    assert layout["bar"] <= 0.15 * layout["height"], layout
    context.close()


def test_four_grades_in_a_row_on_an_ordinary_phone(server: Server, phone: Any) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    page = phone.new_page()
    page.goto(f"{server.base}/b/{code}")
    tops = page.evaluate("() => [...document.querySelectorAll('#pt-p01 .grades span')]"
                         ".map(s => Math.round(s.getBoundingClientRect().top))")
    assert len(set(tops)) == 1


def test_submit_with_javascript_off(server: Server, browser: Any) -> None:
    meeting = server.meeting()
    [code] = server.codes(meeting, 1)
    context = browser.new_context(viewport=PHONE, java_script_enabled=False, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{server.base}/b/{code}")
    assert page.locator("#bar").is_hidden()
    partial = {point: VARIED[point] for point in POINTS if point != "p07"}
    for point, grade in partial.items():
        page.locator(f"#pt-{point} label:has(input[value='{grade}']) span").click()
    page.locator("#send").click()

    # The server's check: answers kept, the unanswered point named.
    assert page.locator(".alert").inner_text() == message("fix_below", n=1)
    assert page.locator("#pt-p07 .problem").inner_text() == "！" + message("problem_missing")
    assert checked(page) == partial
    page.locator("#pt-p07 label:has(input[value='D']) span").click()
    page.locator("#send").click()
    page.wait_for_url(f"{server.base}/thanks")
    assert page.locator("h1").inner_text() == message("thanks_counted")
    assert len(server.ballots(meeting)) == 1
    context.close()


def test_screen_claims_one_code_per_phone(server: Server, browser: Any, artifacts: Path) -> None:
    meeting = server.meeting(mode="screen", attendance=2)
    claim_url = f"{server.base}/s/{screen_key(TEST_SECRET, meeting)}"
    projector = browser.new_page(viewport={"width": 1280, "height": 720}, locale="zh-CN")
    projector.goto(claim_url + "/screen")
    assert [projector.locator(f'[data-live="{name}"]').inner_text() for name in ("claimed", "attendance")] == ["0", "2"]
    assert projector.locator(".state").inner_text() == "投票进行中 · 不记名 · 每人一票"
    assert projector.locator(".url").inner_text() == claim_url.removeprefix("http://")
    projector.screenshot(path=artifacts / "screen-page-720.png")
    projector.close()

    phones = [browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN") for _ in range(3)]
    codes = []
    for context in phones[:2]:
        page = context.new_page()
        page.goto(claim_url)
        page.locator("button.submit").tap()
        page.wait_for_url(f"{server.base}/b/*")
        codes.append(page.url.rsplit("/", 1)[1])
    assert codes[0] != codes[1]
    assert [len(code) for code in codes] == [10, 10]

    again = phones[0].new_page()
    again.goto(claim_url)
    assert again.url == f"{server.base}/b/{codes[0]}"

    late = phones[2].new_page()
    late.goto(claim_url)
    assert late.locator("h1").inner_text() == message("pool_empty_title")
    with server.api() as api:
        tally = api.get(f"/api/v1/meetings/{meeting}/tally").json()
    assert (tally["tokens_issued"], tally["attendance"]) == (2, 2)
    for context in phones:
        context.close()


def test_card_sheet_screenshot(server: Server, browser: Any, artifacts: Path) -> None:
    meeting = server.meeting()
    with server.api() as api:
        sheet = api.post(f"/api/v1/meetings/{meeting}/cards", json={"count": 10, "group": "secretaries"})
    assert sheet.status_code == 201
    assert sheet.text.count('class="card band-2"') == 10
    # A4 at 96 dpi, the sheet as the organizer's browser receives it.
    page = browser.new_page(viewport={"width": 794, "height": 1123}, locale="zh-CN")
    page.route(f"{server.base}/__card-sheet", lambda route: route.fulfill(
        status=200, content_type="text/html; charset=utf-8", body=sheet.text))
    page.goto(f"{server.base}/__card-sheet")
    assert page.locator(".card").count() == 10
    assert page.locator(".sheet").count() == 2
    band = page.evaluate("() => getComputedStyle(document.querySelector('.band')).backgroundImage")
    assert band.startswith("radial-gradient(")  # the inline stylesheet applied: group C's dotted band
    page.screenshot(path=artifacts / "card-sheet.png", full_page=True)
    page.close()
