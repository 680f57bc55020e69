"""Organizer sessions end on the server: logout and a password change revoke them, a copied cookie
stops working. Wrong passwords from elsewhere cannot lock an organizer out of a browser that has
signed in before, and every failed sign-in reads the same."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from app import store
from app.db import Database
from app.errors import Unauthorized
from app.main import SESSION_COOKIE, create_app
from app.settings import Settings
from tests.conftest import TEST_SECRET
from tests.test_access import PASSWORD, sign_in
from tests.test_console import csrf_of, make_user

NEW_PASSWORD = "a-new-long-passphrase"
FAILED = "用户名或密码不正确。连续输错 5 次后，未在本账号登录过的浏览器需等待 15 分钟再试"


def another(settings: Settings, database: Database) -> TestClient:
    """A second browser on the same server."""
    return TestClient(create_app(settings, database))


def login(client: TestClient, username: str, password: str) -> tuple[int, str]:
    csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": username, "password": password, "csrf": csrf},
                    follow_redirects=False)
    error = re.search(r'<em class="error">([^<]*)</em>', r.text)
    return r.status_code, error.group(1) if error else ""


def signed_in(client: TestClient) -> bool:
    return client.get("/meetings", follow_redirects=False).status_code == 200


def test_logout_ends_the_session_on_the_server(client: TestClient, settings: Settings, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    copied = client.cookies.get(SESSION_COOKIE)
    assert copied and signed_in(client)
    r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    with another(settings, database) as thief:
        thief.cookies.set(SESSION_COOKIE, copied)
        assert not signed_in(thief)
        assert thief.get("/api/v1/units").status_code == 401


def test_a_password_change_ends_the_other_sessions(client: TestClient, settings: Settings, database: Database) -> None:
    make_user(database)
    csrf = sign_in(client, "wang")
    with another(settings, database) as laptop, another(settings, database) as stolen:
        sign_in(laptop, "wang")
        stolen.cookies.set(SESSION_COOKIE, laptop.cookies.get(SESSION_COOKIE) or "")
        assert signed_in(laptop) and signed_in(stolen)
        r = client.post("/account/password", data={"csrf": csrf, "current": PASSWORD, "new": NEW_PASSWORD,
                                                   "confirm": NEW_PASSWORD}, follow_redirects=False)
        assert r.status_code == 303
        assert signed_in(client)  # the browser that changed it stays signed in
        assert not signed_in(laptop) and not signed_in(stolen)
        assert login(laptop, "wang", NEW_PASSWORD)[0] == 303


def test_an_outsider_cannot_lock_an_organizer_out_of_a_browser_that_signed_in_before(
    client: TestClient, settings: Settings, database: Database
) -> None:
    make_user(database)
    sign_in(client, "wang")  # the deputy secretary's laptop, the day before
    client.post("/logout", data={"csrf": csrf_of(client.get("/meetings").text)})
    with another(settings, database) as outsider, another(settings, database) as new_laptop:
        assert [login(outsider, "wang", f"guess-{i}")[0] for i in range(12)] == [401] * 12
        assert login(outsider, "wang", PASSWORD)[0] == 401  # locked, for browsers the account does not know
        assert login(new_laptop, "wang", PASSWORD)[0] == 401
        assert login(client, "wang", PASSWORD)[0] == 303  # meeting morning: the known laptop signs in
        assert signed_in(client)
        # ... and its correct password lifted the lock.
        assert login(new_laptop, "wang", PASSWORD)[0] == 303


def test_the_lock_ends_by_itself_and_a_known_browser_that_guesses_is_forgotten(database: Database) -> None:
    make_user(database)
    now = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
    with database.session() as session:
        for _ in range(5):
            with pytest.raises(Unauthorized):
                store.sign_in(session=session, username="wang", password="wrong-guess", browser="outsider", now=now)
        with pytest.raises(Unauthorized):
            store.sign_in(session=session, username="wang", password=PASSWORD, browser="outsider", now=now)
        later = now + dt.timedelta(minutes=15, seconds=1)
        assert store.sign_in(session=session, username="wang", password=PASSWORD, browser="laptop", now=later).username == "wang"
        # The laptop is known now; five wrong passwords from it and it is a stranger again.
        for _ in range(5):
            with pytest.raises(Unauthorized):
                store.sign_in(session=session, username="wang", password="wrong-guess", browser="laptop", now=later)
        assert store.is_known_browser(session=session, username="wang", browser="laptop") is False


def test_every_failure_reads_the_same(client: TestClient, settings: Settings, database: Database) -> None:
    make_user(database)
    make_user(database, "zhao")
    with database.session() as session:
        zhao = next(user for user in store.list_users(session=session) if user.username == "zhao")
        store.update_user(session=session, actor="t", user_id=zhao.id or 0, role="admin", categories=(), active=False)
    with another(settings, database) as outsider:
        for i in range(5):
            login(outsider, "wang", f"guess-{i}")
        answers = {
            "unknown user": login(outsider, "nobody-here", PASSWORD),
            "wrong password": login(client, "wang", "wrong-password"),
            "locked": login(outsider, "wang", PASSWORD),
            "inactive": login(client, "zhao", PASSWORD),
        }
    assert answers == dict.fromkeys(answers, (401, FAILED))


def test_sessions_end_after_a_working_day_on_the_server(database: Database) -> None:
    make_user(database)
    start = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
    with database.session() as session:
        user = store.sign_in(session=session, username="wang", password=PASSWORD, browser="b", now=start)
        token = store.start_session(session=session, user_id=user.id or 0, now=start)
        assert store.session_user(session=session, token=token, now=start + dt.timedelta(hours=7)) is not None
        assert store.session_user(session=session, token=token, now=start + dt.timedelta(hours=8, seconds=1)) is None


def test_a_cookie_signed_with_the_secret_is_not_a_session(client: TestClient, database: Database) -> None:
    """Even whoever holds the signing secret cannot make a session: it lives in the database."""
    make_user(database)
    forged = TimestampSigner(TEST_SECRET).sign(base64.b64encode(json.dumps({"uid": 1, "sid": "x"}).encode())).decode()
    client.cookies.set(SESSION_COOKIE, forged)
    assert client.get("/api/v1/accounts").status_code == 401
    assert not signed_in(client)
