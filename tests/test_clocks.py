"""Clocks (issue #13, point 5): a jump of the application host's clock moves no webhook lease,
no retry window, no place in the results export; sessions and lockouts survive a backward jump.

The application's clock is moved the way a host's clock jumps: every reading of it
(``app.tables.utcnow``, which the defaults of the tables and the stores call) is shifted. The
database keeps its own clock, as a PostgreSQL server on another host does; SQLite's is read
through SQLite.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import types
from collections.abc import Callable
from typing import Any

import itsdangerous
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app import auth as auth_rules, store, tables
from app.db import Database
from app.errors import Unauthorized
from app.main import create_app
from app.settings import Settings
from app.tables import WebhookDelivery
from app.webhooks import WebhookWorker
from tests.conftest import ALL_A, mint, open_meeting
from tests.test_access import PASSWORD, sign_in
from tests.test_console import make_user

Jump = Callable[[dt.timedelta], None]


@pytest.fixture
def jump_app_clock(monkeypatch: pytest.MonkeyPatch) -> Jump:
    """Shift the application's clock by the given amount from now on."""

    def jump(by: dt.timedelta) -> None:
        class Shifted(dt.datetime):
            @classmethod
            def now(cls, tz: dt.tzinfo | None = None) -> Any:
                return dt.datetime.now(tz) + by

        monkeypatch.setattr(tables, "dt", types.SimpleNamespace(datetime=Shifted, UTC=dt.UTC))

    return jump


def close_with_ballots(client: TestClient, auth: dict[str, str], unit: str) -> int:
    meeting = open_meeting(client, auth, unit_code=unit)["id"]
    for code in mint(client, auth, meeting, 5):  # a meeting closes with K ballots
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 200
    return int(meeting)


def one_delivery(settings: Settings, database: Database, auth: dict[str, str]) -> Settings:
    calm = settings.model_copy(update={"webhook_worker": False, "webhook_allowed_hosts": "127.0.0.1"})
    with TestClient(create_app(calm, database)) as client:
        body = {"url": "http://127.0.0.1:9/never-called", "secret": "shared-secret-for-the-tests-0123"}
        assert client.post("/api/v1/webhooks", json=body, headers=auth).status_code == 201
        close_with_ballots(client, auth, "CLK1")
    return calm


def delivery_state(database: Database) -> tuple[str, int]:
    with database.reading() as conn:
        status, attempts = conn.execute(select(WebhookDelivery.status, WebhookDelivery.attempts)).one()  # type: ignore[call-overload]
    return str(status), int(attempts)


def test_a_lease_is_not_cut_short_by_a_forward_jump_of_the_app_clock(
    settings: Settings, database: Database, auth: dict[str, str], jump_app_clock: Jump
) -> None:
    calm = one_delivery(settings, database, auth)
    first, second = WebhookWorker(database, calm), WebhookWorker(database, calm)
    [claimed] = first._claim()
    jump_app_clock(dt.timedelta(hours=1))
    # The first worker's lease (its request timeout + 30 s) still runs on the database's clock:
    # a second worker must not send the same delivery in parallel.
    assert second._claim() == []
    assert delivery_state(database) == ("pending", 1)
    assert claimed.attempt == 1


def test_a_failure_after_a_jump_past_the_retry_window_is_retried_not_given_up(
    settings: Settings, database: Database, auth: dict[str, str], jump_app_clock: Jump
) -> None:
    calm = one_delivery(settings, database, auth)
    worker = WebhookWorker(database, calm)
    [claimed] = worker._claim()
    jump_app_clock(dt.timedelta(hours=49))
    worker._record(claimed, 500, None, 12)
    assert delivery_state(database) == ("pending", 1)


def test_an_event_enqueued_by_a_host_whose_clock_runs_ahead_is_due_at_once(
    settings: Settings, database: Database, auth: dict[str, str], jump_app_clock: Jump
) -> None:
    jump_app_clock(dt.timedelta(hours=49))
    calm = one_delivery(settings, database, auth)
    jump_app_clock(dt.timedelta(0))
    [claimed] = WebhookWorker(database, calm)._claim()
    assert claimed.attempt == 1


def page(client: TestClient, auth: dict[str, str], **params: Any) -> tuple[list[int], str | None]:
    r = client.get("/api/v1/results", params=params, headers=auth)
    assert r.status_code == 200, r.text
    return [record["meeting_id"] for record in r.json()["results"]], r.json()["next_cursor"]


def test_a_result_closed_by_a_host_whose_clock_runs_behind_is_not_skipped(
    client: TestClient, auth: dict[str, str], jump_app_clock: Jump
) -> None:
    first = close_with_ballots(client, auth, "CLK1")
    second = close_with_ballots(client, auth, "CLK2")
    assert page(client, auth) == ([first, second], None)
    closed_at = client.get("/api/v1/results", headers=auth).json()["results"][0]["closed_at"]
    ids, cursor = page(client, auth, limit=1)
    assert (ids, cursor is not None) == ([first], True)

    jump_app_clock(dt.timedelta(hours=-1))
    third = close_with_ballots(client, auth, "CLK3")
    jump_app_clock(dt.timedelta(0))

    ids, cursor = page(client, auth, limit=1, cursor=cursor)
    assert ids == [second]
    assert page(client, auth, limit=1, cursor=cursor) == ([third], None)
    # `since` reads the same clock as the close: the late close is "after" an earlier one.
    assert page(client, auth, since=closed_at) == ([second, third], None)


def test_a_cursor_from_before_the_sequence_is_refused_plainly(client: TestClient, auth: dict[str, str]) -> None:
    close_with_ballots(client, auth, "CLK1")
    old = json.dumps({"v": 1, "at": "2026-12-03T03:41:07.512000+00:00", "m": 1})
    cursor = base64.urlsafe_b64encode(old.encode()).decode().rstrip("=")
    r = client.get("/api/v1/results", params={"cursor": cursor}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "results_cursor_old")
    assert r.json()["detail"] == (
        "此 cursor 由升级前的版本生成，已不能使用：请不带 cursor 从第一页重新读取（已有的结果按 meeting_id 和 result_version 去重）"
    )


def test_a_session_survives_a_backward_jump_of_the_clock(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(database)
    sign_in(client, "wang")
    assert client.get("/meetings", follow_redirects=False).status_code == 200
    # The cookie was signed "now"; the clock then goes back an hour.
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 3600)
    assert client.get("/meetings", follow_redirects=False).status_code == 200
    # A working day after the signature, the session still ends.
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: int(time.time()) + 8 * 3600 + 1)
    r = client.get("/meetings", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/meetings")


# A browser that has never signed in to the account: strangers' failures lock it out, not the owner's.
STRANGER = "a-browser-the-account-does-not-know"


def test_a_lockout_lasts_at_most_its_length_after_a_backward_jump(database: Database) -> None:
    make_user(database)
    locked_at = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
    with database.session() as session:
        for _ in range(auth_rules.MAX_FAILED_LOGINS):
            with pytest.raises(Unauthorized):
                store.sign_in(session=session, username="wang", password="nope-nope-nope", now=locked_at,
                              browser=STRANGER)
        jumped = locked_at - dt.timedelta(hours=2)  # the clock goes back two hours
        with pytest.raises(Unauthorized) as refused:
            store.sign_in(session=session, username="wang", password=PASSWORD, now=jumped, browser=STRANGER)
        assert refused.value.problem.code == "sign_in_failed"  # the same words as any failure
        user = store.sign_in(session=session, username="wang", password=PASSWORD, now=jumped + auth_rules.LOCKOUT,
                             browser=STRANGER)
        assert user.username == "wang"
