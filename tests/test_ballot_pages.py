"""The phone pages (issue #3): ballot, thanks, plain refusals, typed codes, screen claims, cards.

Every text is compared with the catalogue in app.i18n, and every ballot the pages store is read
back from the box, so a page that said "counted" without counting would fail here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text, update
from sqlmodel import col

from app import figures, i18n, store
from app.db import Database, metadata
from app.i18n import message
from app.messages import MESSAGES
from app.qr import qr_modules, qr_svg
from app.redact import RedactPhonePaths, redact
from app.routes.ballot import CLAIM_COOKIE, COMMENT_MAX_CHARS
from app.routes.pages import ROOT, meeting_of_screen_key, screen_key
from app.tables import BallotToken
from app.templates import default_template
from app.tokens import normalize, printable
from tests.conftest import ALL_A, KEYS, TEST_SECRET, kept_ballots, mint, open_meeting

POINTS = default_template().point_ids()
# The whole ballot page, HTML + CSS + JavaScript, gzipped: the budget.
PAGE_BUDGET_BYTES = 40 * 1024


def ballots(database: Database, meeting_id: int) -> list[figures.StoredBallot]:
    return kept_ballots(database, meeting_id)


def checked(html: str) -> dict[str, str]:
    """The radio buttons a page shows as chosen."""
    return dict(re.findall(r'<input type="radio" name="(\w+)" value="(\w+)"[^>]* checked>', html))


def h1(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert found is not None, html[:500]
    return found.group(1).strip()


# ---- the catalogue and the pure helpers --------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        (None, None, "zh"),
        (None, "", "zh"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "fr-FR,en;q=0.5,zh;q=0.4", "en"),
        (None, "fr-FR,zh;q=0.5,en;q=0.4", "zh"),
        (None, "en;q=0,zh;q=0.1", "zh"),
        (None, "de-DE,fr;q=0.9", "zh"),
        (None, "en;q=nan", "zh"),
        ("en", "zh-CN", "en"),
        ("zh", "en-US", "zh"),
        ("EN", None, "en"),
        ("xx", "en", "en"),
        ("", "en", "en"),
    ],
)
def test_language_choice(query: str | None, accept: str | None, expected: str) -> None:
    assert i18n.choose(query, accept) == expected


PHONE_TEMPLATES = ("base", "_partials", "ballot", "thanks", "message", "entry", "claim", "screen", "cards")
PHONE_ROUTES = ("ballot", "cards", "pages")


def test_every_text_the_pages_ask_for_is_in_the_catalogue() -> None:
    sources = [ROOT / "templates" / f"{name}.html" for name in PHONE_TEMPLATES]
    sources += [ROOT / "app" / "routes" / f"{name}.py" for name in PHONE_ROUTES]
    asked: set[str] = set()
    for path in sources:
        body = path.read_text("utf-8")
        asked |= set(re.findall(r"\bt\(\s*['\"](\w+)['\"]", body))
        for pair in re.findall(r"\.message\(\s*['\"](\w+)['\"],\s*['\"](\w+)['\"]", body):
            asked |= set(pair)
    assert "ballot_intro" in asked and "pool_empty_body" in asked  # the scan finds both kinds of use
    assert sorted(asked - set(MESSAGES)) == []  # the one catalogue, app.messages


def test_qr_svg_draws_exactly_the_code_modules() -> None:
    data = "http://testserver/b/K7MQ2X9PAR"
    svg = qr_svg(data, label="扫码测评")
    assert svg.startswith('<svg version="1.1" viewBox="0 0 33 33" xmlns="http://www.w3.org/2000/svg" class="qr"')
    assert 'aria-label="扫码测评"' in svg
    assert "width=" not in svg and "height=" not in svg and "id=" not in svg
    drawn = {(int(x), int(y)) for x, y in re.findall(r"M(\d+),(\d+)H", svg)}
    matrix = qr_modules(data)
    dark = {(x, y) for y, row in enumerate(matrix) for x, on in enumerate(row) if on}
    assert len(matrix) == 33  # version 3 (29 modules) and a quiet zone of 2 each side
    assert drawn == dark


def test_screen_key_names_its_meeting_only_with_the_secret() -> None:
    key = screen_key(TEST_SECRET, 7)
    assert re.fullmatch(r"7-[23456789abcdefghjkmnpqrstuvwxyz]{10}", key)
    assert meeting_of_screen_key(TEST_SECRET, key) == 7
    assert meeting_of_screen_key(TEST_SECRET, key.upper()) == 7
    assert meeting_of_screen_key("another-secret-that-is-long-enough-0123456789", key) is None
    assert meeting_of_screen_key(TEST_SECRET, "8" + key[1:]) is None
    assert meeting_of_screen_key(TEST_SECRET, key[:-1]) is None
    assert meeting_of_screen_key(TEST_SECRET, "x-" + key[2:]) is None
    assert meeting_of_screen_key(TEST_SECRET, key[:-1] + "é") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /b/K7MQ2X9PAR", "GET /b/…"),
        ("GET /b/k7m-q2x-9pa-r?lang=en HTTP/1.1", "GET /b/…?lang=en HTTP/1.1"),
        ('"POST /s/7-k4zpkfsjgb/screen"', '"POST /s/…/screen"'),
        ("GET /static/site.css?v=1", "GET /static/site.css?v=1"),
        ("GET /api/v1/meetings/7/tally", "GET /api/v1/meetings/7/tally"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/b/K7MQ2X9PAR?lang=en", '- - "GET /b/…?lang=en HTTP/1.1" 200'),
        ("/s/7-k4zpkfsjgb", '- - "GET /s/… HTTP/1.1" 200'),
        ("/api/v1/units", '203.0.113.9:5000 - "GET /api/v1/units HTTP/1.1" 200'),
    ],
)
def test_access_log_filter(path: str, expected: str) -> None:
    """uvicorn's access-log record, as uvicorn makes it, after the filter."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("203.0.113.9:5000", "GET", path, "1.1", 200), None)
    assert RedactPhonePaths().filter(record) is True
    assert record.getMessage() == expected


# ---- the ballot page ---------------------------------------------------------------------------


def test_ballot_page_in_chinese_by_default(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.get(f"/b/{code}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["content-security-policy"].startswith("default-src 'self';")
    assert "set-cookie" not in r.headers
    html = r.text
    assert '<html lang="zh-CN">' in html
    assert h1(html) == "党建工作述职评议测评票"
    assert message("ballot_intro", count=19) in html
    assert html.count('type="radio"') == 19 * 4
    for point in default_template().points:
        assert f'<legend><span class="n">{POINTS.index(point.id) + 1}</span>{point.name} ' in html
    assert '<label><input type="radio" name="p01" value="B" data-s="4.8"><span>较好<small>4.8 分</small>' in html
    assert f'action="/b/{code}"' in html
    assert f'href="/b/{code}?lang=en"' in html
    assert message("comment_note") in html
    assert checked(html) == {}


def test_ballot_page_in_english_from_the_browser_or_the_switch(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    by_browser = client.get(f"/b/{code}", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="en">' in by_browser
    assert h1(by_browser) == "Party-building review ballot"
    assert "Duties of the person first responsible" in by_browser
    assert f'action="/b/{code}"' in by_browser  # the browser's own preference needs no parameter
    by_switch = client.get(f"/b/{code}?lang=en", headers={"Accept-Language": "zh-CN"}).text
    assert h1(by_switch) == "Party-building review ballot"
    assert f'action="/b/{code}?lang=en"' in by_switch
    assert 'data-thanks="/thanks?lang=en"' in by_switch
    assert f'href="/b/{code}?lang=zh"' in by_switch


def test_a_typed_code_is_redirected_to_its_one_address(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.get(f"/b/{printable(code).lower()}", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == f"/b/{code}"


@pytest.mark.parametrize("code", ["K7MQ2X9PAR", "K7M", "0OIL1O0IL1", "K7MQ2X9PAR9"])
def test_unknown_or_forged_code(client: TestClient, code: str) -> None:
    r = client.get(f"/b/{code}")
    assert r.status_code == 404
    assert h1(r.text) == message("unknown_title")
    assert message("unknown_body") in r.text
    assert 'href="/c"' in r.text
    assert "Traceback" not in r.text


def test_void_code(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    with database.session() as session:
        assert store.void_unused_tokens(session=session, actor="tests", meeting_id=meeting["id"]) == 1
    r = client.get(f"/b/{code}")
    assert (r.status_code, h1(r.text)) == (410, message("void_title"))
    r = client.post(f"/b/{code}", data=ALL_A)
    assert (r.status_code, h1(r.text)) == (410, message("void_title"))
    assert ballots(database, meeting["id"]) == []


def test_meeting_not_open_and_closed(client: TestClient, auth: dict[str, str], database: Database) -> None:
    client.post("/api/v1/units", json={"code": "JL009", "name": "测试单位", "category": "party_gov"}, headers=auth)
    r = client.post("/api/v1/meetings", headers=auth, json={
        "unit_code": "JL009", "year": 2026, "date": "2026-12-03", "title": "述职评议会", "mode": "cards",
        "attendance": 35})
    meeting_id = r.json()["id"]
    [code] = mint(client, auth, meeting_id, 1)
    r = client.get(f"/b/{code}")
    assert (r.status_code, h1(r.text)) == (409, message("not_open_title"))
    r = client.post(f"/b/{code}", data=ALL_A)
    assert (r.status_code, h1(r.text)) == (409, message("not_open_title"))
    assert client.post(f"/api/v1/meetings/{meeting_id}/open", headers=auth).status_code == 200
    for voter in mint(client, auth, meeting_id, 5):
        assert client.post("/api/v1/ballots", json={"token": voter, "answers": ALL_A}).status_code == 201
    assert client.post(f"/api/v1/meetings/{meeting_id}/close", headers=auth).status_code == 200
    r = client.get(f"/b/{code}")
    assert (r.status_code, h1(r.text)) == (409, message("closed_title"))
    r = client.post(f"/b/{code}", data=ALL_A)
    assert (r.status_code, h1(r.text)) == (409, message("closed_title"))
    assert len(ballots(database, meeting_id)) == 5


# ---- submitting without JavaScript -------------------------------------------------------------


def test_form_post_stores_exactly_one_ballot_and_a_repeat_is_already_counted(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    [code, other] = mint(client, auth, meeting["id"], 2)
    answers = {point: "ABCD"[i % 4] for i, point in enumerate(POINTS)}
    r = client.post(f"/b/{code}", data={**answers, "comment": "  希望加强学习  "}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/thanks"
    assert "set-cookie" not in r.headers
    assert ballots(database, meeting["id"]) == [figures.StoredBallot(None, answers, "希望加强学习")]

    again = client.post(f"/b/{code}", data={**answers, "comment": "  希望加强学习  "}, follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, "/thanks?again=1")
    thanks = client.get(again.headers["location"])
    assert (thanks.status_code, h1(thanks.text)) == (200, message("thanks_already"))

    # Other answers on the spent code get the very same answer: nothing tells them from a retry.
    for other_answers in (ALL_A, {"p01": "Z"}, {**ALL_A, "comment": "意" * 600}):
        changed = client.post(f"/b/{code}", data=other_answers, follow_redirects=False)
        assert (changed.status_code, changed.headers["location"]) == (303, "/thanks?again=1")
    reopened = client.get(f"/b/{code}")
    assert (reopened.status_code, h1(reopened.text)) == (200, message("spent_title"))
    assert f'<div id="counted" data-code="{code}" hidden></div>' in reopened.text  # ballot.js drops the draft
    assert len(ballots(database, meeting["id"])) == 1
    assert client.get(f"/b/{other}").status_code == 200


def test_the_form_and_the_api_share_one_code(client: TestClient, auth: dict[str, str], database: Database) -> None:
    """A phone that posted by fetch and then by form (or the other way) still casts one ballot."""
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    r = client.post(f"/b/{code}", data=ALL_A, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/thanks?again=1")
    assert len(ballots(database, meeting["id"])) == 1


def test_invalid_form_keeps_the_answers_and_names_the_problems(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    sent = {point: "B" for point in POINTS if point not in ("p05", "p07")}
    r = client.post(f"/b/{code}", data={**sent, "p05": "E", "comment": "<b>意见</b>"})
    assert r.status_code == 422
    html = r.text
    assert message("fix_below", n=2) in html
    assert checked(html) == sent
    assert re.findall(r'<fieldset class="point missing" id="pt-(\w+)"', html) == ["p05", "p07"]
    assert '<p class="problem">！' + message("problem_grade") + "</p>" in html.split('id="pt-p05"')[1][:600]
    assert '<p class="problem">！' + message("problem_missing") + "</p>" in html.split('id="pt-p07"')[1][:600]
    assert "&lt;b&gt;意见&lt;/b&gt;</textarea>" in html
    assert ballots(database, meeting["id"]) == []
    fixed = client.post(f"/b/{code}", data={**sent, "p05": "C", "p07": "D"}, follow_redirects=False)
    assert fixed.status_code == 303
    assert len(ballots(database, meeting["id"])) == 1


def test_a_writer_failure_keeps_every_answer(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    client.portal.call(client.app.state.writer.stop)  # type: ignore[attr-defined, union-attr]
    r = client.post(f"/b/{code}", data={**ALL_A, "p03": "C", "comment": "保留"})
    assert r.status_code == 503
    assert message("write_failed") in r.text
    assert checked(r.text) == {**ALL_A, "p03": "C"}
    assert "保留</textarea>" in r.text
    assert ballots(database, meeting["id"]) == []
    assert client.get(f"/b/{code}").status_code == 200  # the code is still unspent


def test_a_point_the_template_lacks(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.post(f"/b/{code}?lang=en", data={**ALL_A, "p99": "A"})
    assert r.status_code == 422
    assert message("problem_unknown_point", "en") in r.text
    assert message("fix_below", "en", n=1) in r.text
    assert checked(r.text) == ALL_A
    assert ballots(database, meeting["id"]) == []


def test_a_comment_too_long(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.post(f"/b/{code}", data={**ALL_A, "comment": "意" * (COMMENT_MAX_CHARS + 1)})
    assert r.status_code == 422
    assert message("problem_comment_long", max=500, length=501) in r.text
    assert checked(r.text) == ALL_A
    assert ballots(database, meeting["id"]) == []


def test_a_malformed_form(client: TestClient, auth: dict[str, str], database: Database) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.post(f"/b/{code}", data=ALL_A, files={"p01": ("x.txt", b"A", "text/plain")})
    assert (r.status_code, h1(r.text)) == (400, message("form_title"))
    assert f'href="/b/{code}"' in r.text
    r = client.post(f"/b/{code}", data={**ALL_A, "comment": ["one", "two"]})
    assert (r.status_code, h1(r.text)) == (400, message("form_title"))
    assert ballots(database, meeting["id"]) == []


NUMBERS_TEMPLATE: dict[str, Any] = {
    **json.loads(default_template().to_json()), "id": "numbers", "version": 1, "input": "numbers", "grades": [],
}


def test_a_numbers_template(client: TestClient, auth: dict[str, str], database: Database) -> None:
    assert client.post("/api/v1/templates", json=NUMBERS_TEMPLATE, headers=auth).status_code == 201
    meeting = open_meeting(client, auth, template_id="numbers")
    [code] = mint(client, auth, meeting["id"], 1)
    page = client.get(f"/b/{code}").text
    assert page.count('type="number"') == 19
    assert '<input type="number" name="p01" value="" min="0" max="6" step="0.5"' in page
    answers = {point: "2" for point in POINTS}
    r = client.post(f"/b/{code}", data={**answers, "p01": "6.5", "p02": "2.3", "p03": "两分"})
    assert r.status_code == 422
    assert message("problem_range", max="6") in r.text
    assert message("problem_step") in r.text
    assert message("problem_not_number") in r.text
    assert '<input type="number" name="p02" value="2.3"' in r.text
    assert '<input type="number" name="p04" value="2"' in r.text
    assert ballots(database, meeting["id"]) == []
    ok = client.post(f"/b/{code}", data={**answers, "p01": "5.5"}, follow_redirects=False)
    assert ok.status_code == 303
    assert ballots(database, meeting["id"])[0].answers == {**answers, "p01": "5.5"}


def test_thanks_page_says_counted_and_anonymous_and_nothing_else(client: TestClient) -> None:
    r = client.get("/thanks")
    assert r.status_code == 200
    assert h1(r.text) == message("thanks_counted")
    assert message("thanks_anonymous") in r.text
    assert "set-cookie" not in r.headers
    english = client.get("/thanks?lang=en&again=1")
    assert h1(english.text) == message("thanks_already", "en")
    assert message("thanks_anonymous", "en") in english.text


# ---- typing a code -----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["K7MQ2X9PAR", " k7m-q2x-9pa-r ", "k7m q2x 9pa r", "K7M—Q2X9PAR".replace("—", "-")])
def test_entry_forgives_spaces_dashes_and_case(client: TestClient, typed: str) -> None:
    r = client.post("/c", data={"code": typed}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/b/K7MQ2X9PAR")


def test_entry_page_and_a_wrong_code(client: TestClient) -> None:
    page = client.get("/c?lang=en")
    assert (page.status_code, h1(page.text)) == (200, message("entry_title", "en"))
    assert 'action="/c?lang=en"' in page.text
    wrong = client.post("/c?lang=en", data={"code": "K7M-Q2X"})
    assert wrong.status_code == 422
    assert message("entry_invalid", "en") in wrong.text
    assert 'value="K7M-Q2X"' in wrong.text
    right = client.post("/c?lang=en", data={"code": "k7mq2x9par"}, follow_redirects=False)
    assert right.headers["location"] == "/b/K7MQ2X9PAR?lang=en"


# ---- the screen: claiming a code ---------------------------------------------------------------


def test_claim_flow(client: TestClient, auth: dict[str, str], settings: Any) -> None:
    meeting = open_meeting(client, auth, mode="screen", attendance=2)
    key = screen_key(TEST_SECRET, meeting["id"])
    page = client.get(f"/s/{key}")
    assert (page.status_code, h1(page.text)) == (200, message("claim_title"))
    assert f'<form method="post" action="/s/{key}">' in page.text
    assert "set-cookie" not in page.headers
    assert client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["tokens_issued"] == 0

    first = client.post(f"/s/{key}", follow_redirects=False)
    assert first.status_code == 303
    code = first.headers["location"].removeprefix("/b/")
    assert normalize(code) == code
    assert first.headers["set-cookie"] == (
        f"{CLAIM_COOKIE}={code}; HttpOnly; Max-Age=43200; Path=/s/{key}; SameSite=lax"
    )
    assert client.get(f"/b/{code}").status_code == 200

    # The same phone (the cookie) gets its own code back, by opening or by pressing again.
    reopened = client.get(f"/s/{key}", follow_redirects=False)
    assert (reopened.status_code, reopened.headers["location"]) == (303, f"/b/{code}")
    pressed = client.post(f"/s/{key}", follow_redirects=False)
    assert pressed.headers["location"] == f"/b/{code}"
    assert client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["tokens_issued"] == 1

    client.cookies.clear()
    second = client.post(f"/s/{key}", follow_redirects=False)
    assert second.status_code == 303
    assert second.headers["location"] != f"/b/{code}"
    client.cookies.clear()
    empty = client.post(f"/s/{key}")
    assert (empty.status_code, h1(empty.text)) == (409, message("pool_empty_title"))
    assert message("pool_empty_body", n=2) in empty.text
    assert client.get(f"/s/{key}").status_code == 409
    tally = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()
    assert (tally["tokens_issued"], tally["attendance"]) == (2, 2)


def test_a_forged_cookie_claims_nothing_else(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth, mode="screen", attendance=3)
    other = open_meeting(client, auth, unit_code="JL002", mode="screen", attendance=3)
    key = screen_key(TEST_SECRET, meeting["id"])
    theirs = client.post(f"/s/{screen_key(TEST_SECRET, other['id'])}", follow_redirects=False)
    their_code = theirs.headers["location"].removeprefix("/b/")
    client.cookies.clear()
    client.cookies.set(CLAIM_COOKIE, their_code, path=f"/s/{key}")
    mine = client.post(f"/s/{key}", follow_redirects=False)
    assert mine.headers["location"] != f"/b/{their_code}"


def test_claim_refusals(client: TestClient, auth: dict[str, str]) -> None:
    cards = open_meeting(client, auth)
    r = client.get(f"/s/{screen_key(TEST_SECRET, cards['id'])}")
    assert (r.status_code, h1(r.text)) == (404, message("link_unknown_title"))
    r = client.post(f"/s/{cards['id']}-aaaaaaaaaa")
    assert (r.status_code, h1(r.text)) == (404, message("link_unknown_title"))
    client.post("/api/v1/units", json={"code": "JL010", "name": "测试单位", "category": "party_gov"}, headers=auth)
    draft = client.post("/api/v1/meetings", headers=auth, json={
        "unit_code": "JL010", "year": 2026, "date": "2026-12-03", "title": "述职评议会", "mode": "screen",
        "attendance": 5}).json()
    key = screen_key(TEST_SECRET, draft["id"])
    r = client.post(f"/s/{key}")
    assert (r.status_code, h1(r.text)) == (409, message("not_open_title"))
    assert "set-cookie" not in r.headers
    assert client.get(f"/api/v1/meetings/{draft['id']}/tally", headers=auth).json()["tokens_issued"] == 0


def test_screen_links_and_projector(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth, mode="screen", attendance=30)
    key = screen_key(TEST_SECRET, meeting["id"])
    r = client.get(f"/api/v1/meetings/{meeting['id']}/screen", headers=auth)
    assert r.status_code == 200
    assert r.json() == {
        "meeting_id": meeting["id"], "mode": "screen", "claim_url": f"http://testserver/s/{key}",
        "screen_url": f"http://testserver/s/{key}/screen", "attendance": 30, "claimed": 0,
    }
    assert client.get(f"/api/v1/meetings/{meeting['id']}/screen").status_code == 401
    cards = open_meeting(client, auth, unit_code="JL002")
    assert client.get(f"/api/v1/meetings/{cards['id']}/screen", headers=auth).status_code == 409
    client.post(f"/s/{key}")
    screen = client.get(f"/s/{key}/screen")
    assert screen.status_code == 200
    assert screen.text.count('<svg version="1.1"') == 1
    assert f"<b class=\"url\">testserver/s/{key}</b>" in screen.text
    assert '<b data-live="claimed">1</b>' in screen.text and '<b data-live="attendance">30</b>' in screen.text
    assert "http-equiv" not in screen.text  # kept current by the push, not a reload (issue #14, point 1)
    assert f'data-events="/s/{key}/events"' in screen.text
    assert client.get("/s/1-nokeynokey/events").status_code == 404


# ---- the card sheet ----------------------------------------------------------------------------


def test_card_sheet_mints_codes_that_work(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    r = client.post(f"/api/v1/meetings/{meeting['id']}/cards", json={"count": 9, "group": "committee"},
                    headers=auth)
    assert r.status_code == 201
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    html = r.text
    printed = re.findall(r'<p class="code">([0-9A-Z-]+)</p>', html)
    assert len(printed) == 9 == len(set(printed))
    assert all(re.fullmatch(r"[0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]", p) for p in printed)
    assert html.count('<article class="card band-1">') == 9
    assert html.count('<span class="letter">B</span>') == 9
    assert html.count(message("card_group", letter="B", name="机关党委委员")) == 9
    assert html.count('<div class="sheet">') == 2
    assert html.count("<svg ") == 9
    css = (ROOT / "static" / "cards.css").read_text("utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    assert f"<style>{css}</style>" in html  # a saved sheet prints the same anywhere
    assert f"style-src 'sha256-{digest}';" in r.headers["content-security-policy"]
    assert "/static/" not in html
    assert message("card_or_type", url="testserver/c") in html
    tally = client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()
    assert tally["tokens_issued"] == 9
    code = normalize(printed[0])
    assert code is not None
    assert client.post(f"/b/{code}", data=ALL_A, follow_redirects=False).headers["location"] == "/thanks"


def test_card_sheet_needs_an_organizer(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    assert client.post(f"/api/v1/meetings/{meeting['id']}/cards", json={"count": 1}).status_code == 401
    assert client.post(f"/api/v1/meetings/{meeting['id']}/cards", json={"count": 0}, headers=auth).status_code == 422
    assert client.post("/api/v1/meetings/999/cards", json={"count": 1}, headers=auth).status_code == 404
    assert client.get(f"/api/v1/meetings/{meeting['id']}/tally", headers=auth).json()["tokens_issued"] == 0


# ---- weight, hosts, traces ---------------------------------------------------------------------


def test_page_weight_budget_and_no_other_host(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    html = client.get(f"/b/{code}").text
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert [a.split("?")[0] for a in assets] == ["/static/site.css", "/static/ballot.js"]
    bodies = [html.encode("utf-8"), *(client.get(asset).content for asset in assets)]
    gzipped = sum(len(gzip.compress(body, 9)) for body in bodies)
    raw = sum(len(body) for body in bodies)
    print(f"ballot page: {raw} bytes, {gzipped} bytes gzipped")
    assert gzipped <= PAGE_BUDGET_BYTES
    assert raw <= PAGE_BUDGET_BYTES  # under budget even where nothing compresses on the way
    for body in bodies:
        text_ = body.decode("utf-8")
        assert "http://" not in text_ and "https://" not in text_ and "//" + "cdn" not in text_
        assert "@font-face" not in text_ and "@import" not in text_
    assert re.findall(r'(?:href|src|action)="([^"]*)"', html) == [
        "data:,", assets[0], f"/b/{code}?lang=en", f"/b/{code}", assets[1],
    ]


def test_no_code_in_any_log_of_a_full_submit(
    client: TestClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    meeting = open_meeting(client, auth)
    [code, api_code] = mint(client, auth, meeting["id"], 2)
    caplog.set_level(logging.DEBUG)
    client.get(f"/b/{printable(code).lower()}")
    client.get(f"/b/{code}")
    client.post(f"/b/{code}", data={**ALL_A, "p05": "E"})
    client.post(f"/b/{code}", data=ALL_A)
    client.post(f"/b/{code}", data=ALL_A)
    client.post(f"/b/{code}", data={**ALL_A, "p01": "D"})
    client.post("/c", data={"code": code})
    client.post("/api/v1/ballots", json={"token": api_code, "answers": ALL_A})
    client.post("/api/v1/ballots", json={"token": api_code, "answers": {**ALL_A, "p01": "D"}})
    # The test client logs its own requests (httpx), code and all: proof that the capture sees
    # a code wherever it is logged. Everything else is the service's own logging.
    client_side = [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    service = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(code in r.getMessage() for r in client_side)
    for record in service:
        line = f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for secret in (code, api_code):
            assert secret not in line and printable(secret) not in line and secret.lower() not in line


def test_nothing_of_the_phone_is_stored(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """No address, user agent or time on the ballot side: not in a column name, not in a value."""
    meeting = open_meeting(client, auth, mode="screen", attendance=5)
    marker_ua, marker_ip = "UA-MARKER-7731 (iPhone; MicroMessenger)", "203.0.113.77"
    headers = {"User-Agent": marker_ua, "X-Forwarded-For": marker_ip, "X-Real-IP": marker_ip}
    key = screen_key(TEST_SECRET, meeting["id"])
    code = client.post(f"/s/{key}", headers=headers, follow_redirects=False).headers["location"][3:]
    assert client.post(f"/b/{code}", data=ALL_A, headers=headers, follow_redirects=False).status_code == 303
    with database.reading() as conn:
        for table in ("ballot", "ballot_token", "tally", "sealed_ballot", "turnout", "meeting_seal"):
            columns = [c["name"] for c in inspect(conn).get_columns(table)]
            assert not [c for c in columns if re.search(r"time|_at$|_on$|date|^ip|_ip|addr|agent|host", c)], table
        dump = json.dumps([
            [list(row) for row in conn.execute(text(f'SELECT * FROM "{t.name}"')).all()]
            for t in metadata.sorted_tables
        ], default=str)
        assert marker_ua not in dump and "UA-MARKER" not in dump and marker_ip not in dump
        assert code not in dump
        spent = conn.execute(
            select(col(BallotToken.used)).where(col(BallotToken.hash) == KEYS.code_hash(code))
        ).scalar_one()
    assert spent is True


# ---- issue #14, point 4: compressed over the wire, versioned assets cached for good -------------


def test_the_ballot_page_over_the_wire(client: TestClient, auth: dict[str, str]) -> None:
    """What a phone downloads: the page, its stylesheet and its script, gzipped by the server."""
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    wire = {"Accept-Encoding": "gzip"}
    page = client.get(f"/b/{code}", headers=wire)
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    answers = [page, *(client.get(asset, headers=wire) for asset in assets)]
    assert [r.headers.get("content-encoding") for r in answers] == ["gzip", "gzip", "gzip"]
    assert all("accept-encoding" in r.headers["vary"].lower() for r in answers)
    over_the_wire = sum(r.num_bytes_downloaded for r in answers)
    raw = sum(len(r.content) for r in answers)
    print(f"ballot page over the wire: {over_the_wire} bytes ({raw} uncompressed)")
    assert over_the_wire <= PAGE_BUDGET_BYTES
    assert over_the_wire < raw / 2.5
    # The assets are versioned by content: cached for good; the page itself never.
    assert [r.headers["cache-control"] for r in answers] == [
        "no-store", "public, max-age=31536000, immutable", "public, max-age=31536000, immutable"]


def test_the_submit_path_is_not_compressed(client: TestClient, auth: dict[str, str]) -> None:
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 201
    assert "content-encoding" not in r.headers
    assert "vary" not in r.headers


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", "no-cache"), ("?v=0000000000", "no-cache"), ("?v={current}", "public, max-age=31536000, immutable")],
    ids=["unversioned", "stale-version", "current-version"],
)
def test_only_the_current_version_of_an_asset_is_cached_for_good(client: TestClient, query: str, expected: str) -> None:
    from app.routes.pages import asset_url

    current = asset_url("site.css").split("?v=")[1]
    r = client.get("/static/site.css" + query.format(current=current))
    assert (r.status_code, r.headers["cache-control"]) == (200, expected)


def test_the_phones_own_text_size_reaches_the_page() -> None:
    """WeChat's 字体大小 and the phone's larger-text setting scale the page's text; a stylesheet that
    pins text-size-adjust (100% or none) would defeat them (issue #14, point 3)."""
    css = (Path(ROOT) / "static" / "site.css").read_text("utf-8")
    assert "text-size-adjust:" not in css.replace(" ", "")


def test_console_assets_are_versioned(client: TestClient) -> None:
    html = client.get("/login").text
    assert re.findall(r'href="(/static/[^"]+)"', html) == [asset_url_of("console.css")]


def asset_url_of(name: str) -> str:
    from app.routes.pages import asset_url

    return asset_url(name)


def test_static_files_are_served(client: TestClient) -> None:
    for name in ("site.css", "ballot.js", "cards.css", "screen.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        assert r.content == (Path(ROOT) / "static" / name).read_bytes()


def test_the_writer_path_is_the_only_way_in(client: TestClient, auth: dict[str, str], database: Database) -> None:
    """A token voided after the page was shown: the form's POST meets the writer's check."""
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    assert client.get(f"/b/{code}").status_code == 200
    with database.writing() as conn:
        conn.execute(update(BallotToken).where(col(BallotToken.hash) == KEYS.code_hash(code)).values(void=True))
    r = client.post(f"/b/{code}", data=ALL_A)
    assert (r.status_code, h1(r.text)) == (410, message("void_title"))
    assert ballots(database, meeting["id"]) == []
