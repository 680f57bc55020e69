"""Guessing codes is slowed per address, in memory only."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.guard import GuessGuard
from tests.conftest import ALL_A, mint, open_meeting


@pytest.mark.parametrize(
    ("wrong", "elapsed", "allowed"),
    [
        (2, 0.0, True),  # 3 - 2 = 1 left
        (3, 0.0, False),  # empty
        (3, 1.9, False),  # 0.5/s: 0.95 after 1.9 s, still under one
        (3, 2.0, True),  # one whole code back after 2 s
        (10, 100.0, True),  # refilled, never above the burst
    ],
)
def test_bucket(wrong: int, elapsed: float, allowed: bool) -> None:
    guard = GuessGuard(burst=3, refill_per_s=0.5)
    for _ in range(wrong):
        guard.wrong("10.0.0.1", now=0.0)
    assert guard.allowed("10.0.0.1", now=elapsed) is allowed
    assert guard.allowed("10.0.0.2", now=elapsed) is True  # another address is not affected


def test_guessing_gets_429_even_for_a_right_code_and_nothing_is_logged(
    client: TestClient, auth: dict[str, str], database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    meeting = open_meeting(client, auth)
    [code] = mint(client, auth, meeting["id"], 1)
    client.app.state.guard = GuessGuard(burst=3, refill_per_s=0.001)  # type: ignore[attr-defined]
    statuses = [client.post("/api/v1/ballots", json={"token": guess, "answers": ALL_A}).status_code
                for guess in ("K7MQ2X9PAR", "K7MQ2X9PAS", "not-a-code")]
    assert statuses == [404, 404, 404]
    r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A})
    assert (r.status_code, r.json()["code"]) == (429, "too_many_guesses")
    page = client.get(f"/b/{code}")
    assert (page.status_code, page.headers["retry-after"]) == (429, str(client.app.state.guard.retry_after("testclient")))  # type: ignore[attr-defined]
    assert "这台设备输入错误的测评码次数过多" in page.text
    assert "testclient" not in caplog.text
    client.app.state.guard = GuessGuard()  # type: ignore[attr-defined]
    assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
