"""Webhooks: a real receiver on 127.0.0.1 that fails at first, an app restart between attempts,
exactly-once processing by delivery id, backoff, giving up, sending again, and safe claiming."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app import store, webhooks
from app.db import Database, create_database
from app.main import create_app
from app.settings import Settings
from app.tables import WebhookDelivery, WebhookEndpoint
from app.webhooks import WebhookWorker, backoff, decide, signature, verify_signature
from tests.conftest import mint, open_meeting

SECRET = "shared-secret-for-the-tests-0123"
ALL_A = {f"p{i:02d}": "A" for i in range(1, 20)}
ALL_B = {f"p{i:02d}": "B" for i in range(1, 20)}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receivers of these tests listen on this machine: an intranet host, allowed by name."""
    return settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})


class Receiver:
    """The main scoring system's side: checks the signature, processes each delivery id once."""

    def __init__(self, secret: str = SECRET, fail_first: int = 0, delay: float = 0.0) -> None:
        self.secret, self.fail_first, self.delay = secret, fail_first, delay
        self.requests: list[tuple[str, str, bool, int]] = []  # delivery id, event, signature ok, answer
        self.processed: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                ok = verify_signature(receiver.secret, self.headers[webhooks.TIMESTAMP_HEADER], body,
                                      self.headers[webhooks.SIGNATURE_HEADER])
                delivery = self.headers[webhooks.DELIVERY_HEADER]
                with receiver.lock:
                    if not ok:
                        answer = 401
                    elif len(receiver.requests) < receiver.fail_first:
                        answer = 500
                    else:
                        answer = 200
                        if delivery in receiver.processed:
                            receiver.duplicates += 1
                        else:
                            receiver.processed[delivery] = json.loads(body)
                    receiver.requests.append((delivery, self.headers[webhooks.EVENT_HEADER], ok, answer))
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/onsite"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def quick(settings: Settings, **overrides: Any) -> Settings:
    fast = {"webhook_poll_seconds": 0.02, "webhook_backoff_seconds": 0.05, "webhook_backoff_max_seconds": 0.2,
            "webhook_timeout_seconds": 2.0}
    return settings.model_copy(update={**fast, **overrides})


def register(client: TestClient, auth: dict[str, str], url: str, events: list[str] | None = None) -> int:
    body: dict[str, Any] = {"url": url, "secret": SECRET}
    if events is not None:
        body["events"] = events
    r = client.post("/api/v1/webhooks", json=body, headers=auth)
    assert r.status_code == 201, r.text
    assert "secret" not in r.json()
    return r.json()["id"]  # type: ignore[no-any-return]


def closed_meeting(client: TestClient, auth: dict[str, str], ballots: int = 5) -> tuple[int, list[str]]:
    meeting = open_meeting(client, auth)["id"]
    codes = mint(client, auth, meeting, ballots)
    for code in codes:
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
    assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 200
    return meeting, codes


def deliveries(client: TestClient, auth: dict[str, str], webhook_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()[::-1]  # oldest first


def status_of(database: Database, delivery_id: str) -> tuple[str, int]:
    with database.reading() as conn:
        row = conn.execute(
            select(WebhookDelivery.status, WebhookDelivery.attempts).where(WebhookDelivery.id == delivery_id)  # type: ignore[arg-type]
        ).one()
    return row[0], row[1]


def only_delivery(database: Database) -> str:
    with database.reading() as conn:
        [delivery_id] = conn.execute(select(WebhookDelivery.id)).scalars().all()  # type: ignore[call-overload]
    return str(delivery_id)


# ---- the "done when": a receiver that fails first, a restart, exactly once -------------


def test_receiver_processes_each_event_once_across_a_restart(settings: Settings, database: Database,
                                                             auth: dict[str, str]) -> None:
    with Receiver(fail_first=2) as receiver:
        # The first app waits long before a retry, so that it is stopped between two attempts.
        with TestClient(create_app(quick(settings, webhook_backoff_seconds=0.5), database)) as client:
            webhook = register(client, auth, receiver.url)
            meeting, codes = closed_meeting(client, auth)
            wait_until(lambda: len(receiver.requests) == 1)
        delivery_id = only_delivery(database)
        assert status_of(database, delivery_id) == ("pending", 1)
        assert receiver.processed == {}

        with TestClient(create_app(quick(settings), database)) as client:
            wait_until(lambda: status_of(database, delivery_id)[0] == "delivered")
            assert [(a, ok, answer) for a, _, ok, answer in receiver.requests] == [
                (delivery_id, True, 500), (delivery_id, True, 500), (delivery_id, True, 200)
            ]
            [log] = deliveries(client, auth, webhook)
            assert (log["status"], log["attempts"], log["last_status_code"]) == ("delivered", 3, 200)
            assert [(a["number"], a["status_code"], a["error"]) for a in log["log"]] == [
                (1, 500, None), (2, 500, None), (3, 200, None)
            ]
            body = receiver.processed[delivery_id]
            [record] = client.get("/api/v1/results", headers=auth).json()["results"]
            assert (body["event"], body["delivery_id"], body["schema_version"]) == ("meeting.closed", delivery_id, 1)
            assert body["result"] == record
            assert body["result"]["score"] == {"rounded": "100.00", "exact": "100"}
            # the result and nothing else: no answers, no codes
            raw = json.dumps(body)
            assert "answers" not in raw
            assert not any(code in raw for code in codes)

            # "send again": the same id comes once more and the receiver ignores it
            r = client.post(f"/api/v1/webhook-deliveries/{delivery_id}/resend", headers=auth)
            assert (r.status_code, r.json()["status"]) == (200, "pending")
            wait_until(lambda: len(receiver.requests) == 4)
            assert (receiver.duplicates, list(receiver.processed)) == (1, [delivery_id])

            # reopen and close again: two more events, each processed once
            r = client.post(f"/api/v1/meetings/{meeting}/reopen", json={"reason": "漏计一张票"}, headers=auth)
            assert r.status_code == 200
            for code in mint(client, auth, meeting, 5):  # closing again must add at least K
                assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_B}).status_code == 201
            assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 200
            wait_until(lambda: len(receiver.processed) == 3)
            events = [(b["event"], b["result"]["result_version"], b["result"]["score"]["exact"])
                      for b in receiver.processed.values()]
            # 5 × 100 and 5 × 80: drop one of each -> (400 + 320) / 8 = 90
            assert events == [("meeting.closed", 1, "100"), ("meeting.reopened", 1, "100"), ("meeting.closed", 2, "90")]
            assert receiver.duplicates == 1
            assert len(receiver.requests) == 6
            assert sorted(d["id"] for d in deliveries(client, auth, webhook)) == sorted(receiver.processed)


# ---- bad receivers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_and_slow_receivers_do_not_hold_up_a_good_one(settings: Settings, database: Database,
                                                           auth: dict[str, str]) -> None:
    with Receiver() as good, Receiver(delay=1.5) as slow, \
            TestClient(create_app(quick(settings, webhook_timeout_seconds=0.3), database)) as client:
        dead_id = register(client, auth, f"http://127.0.0.1:{free_port()}/hook")
        slow_id = register(client, auth, slow.url)
        good_id = register(client, auth, good.url)
        started = time.monotonic()
        closed_meeting(client, auth)
        wait_until(lambda: len(good.processed) == 1)
        assert time.monotonic() - started < 3
        wait_until(lambda: all(deliveries(client, auth, w)[0]["attempts"] >= 2 for w in (dead_id, slow_id)))
        dead, slow_log = deliveries(client, auth, dead_id)[0], deliveries(client, auth, slow_id)[0]
        assert (dead["status"], dead["log"][0]["status_code"], dead["log"][0]["error"]) == ("pending", None,
                                                                                           "ConnectError")
        assert (slow_log["status"], slow_log["log"][0]["error"]) == ("pending", "timeout")
        assert deliveries(client, auth, good_id)[0]["status"] == "delivered"


def test_gives_up_after_the_retry_window_and_sends_again_on_request(settings: Settings, database: Database,
                                                                    auth: dict[str, str]) -> None:
    # A window of 0.4 s instead of 48 hours; the receiver refuses everything at first.
    with Receiver(fail_first=10**6) as receiver, \
            TestClient(create_app(quick(settings, webhook_retry_hours=0.4 / 3600), database)) as client:
        webhook = register(client, auth, receiver.url)
        closed_meeting(client, auth)
        delivery_id = only_delivery(database)
        wait_until(lambda: status_of(database, delivery_id)[0] == "failed")
        failed = deliveries(client, auth, webhook)[0]
        assert failed["next_attempt_at"] is None
        assert {a["status_code"] for a in failed["log"]} == {500}, failed["log"]
        # backoff 0.05, 0.1, 0.2, 0.2 … within 0.4 s: at least 3 attempts, and then no more
        tries = failed["attempts"]
        assert tries >= 3
        time.sleep(0.3)
        assert status_of(database, delivery_id) == ("failed", tries)

        receiver.fail_first = 0
        r = client.post(f"/api/v1/webhook-deliveries/{delivery_id}/resend", headers=auth)
        assert r.status_code == 200
        wait_until(lambda: status_of(database, delivery_id)[0] == "delivered")
        assert list(receiver.processed) == [delivery_id]
        assert deliveries(client, auth, webhook)[0]["log"][-1]["status_code"] == 200


def test_wrong_secret_is_refused_by_the_receiver(settings: Settings, database: Database,
                                                 auth: dict[str, str]) -> None:
    with Receiver(secret="the-receivers-other-secret-xyz") as receiver, \
            TestClient(create_app(quick(settings), database)) as client:
        register(client, auth, receiver.url)
        closed_meeting(client, auth)
        wait_until(lambda: len(receiver.requests) >= 1)
        assert receiver.requests[0][2:] == (False, 401)
        assert receiver.processed == {}


# ---- administration -----------------------------------------------------------------------------


def test_register_list_delete_and_the_outbox_follows_the_transaction(client: TestClient, auth: dict[str, str],
                                                                     database: Database) -> None:
    unreadable = "body.url 不是可以发送请求的网址"
    bad = [
        ({"url": "ftp://x/y", "secret": SECRET}, "request_invalid", "请求内容有误：body.url 格式不正确"),
        # found by schemathesis: a 500 once
        ({"url": "http://[", "secret": SECRET}, "webhook_url_unreadable", unreadable),
        ({"url": "https://scoring.example:99999/h", "secret": SECRET}, "webhook_url_unreadable", unreadable),
        ({"url": "https://:443/h", "secret": SECRET}, "webhook_url_unreadable", unreadable),
        ({"url": "https://scoring.example/h", "secret": "short"}, "request_invalid",
         "请求内容有误：body.secret 至少需要 16 个字符"),
        ({"url": "https://scoring.example/h", "secret": SECRET, "events": ["ballot.cast"]}, "request_invalid",
         "请求内容有误：body.events.0 应为以下之一：'meeting.closed', 'meeting.reopened', 'meeting.voided'"),
        ({"url": "https://scoring.example/h", "secret": SECRET, "events": []}, "request_invalid",
         "请求内容有误：body.events 至少需要 1 项"),
    ]
    for body, code, detail in bad:
        r = client.post("/api/v1/webhooks", json=body, headers=auth)
        assert (r.status_code, r.json()["code"], r.json()["detail"]) == (422, code, detail), body
    closes_only = register(client, auth, "https://user:pw@scoring.example/closed", ["meeting.closed"])
    everything = register(client, auth, "https://scoring.example/all")
    listed = client.get("/api/v1/webhooks", headers=auth).json()
    assert [(w["id"], w["events"]) for w in listed] == [
        (closes_only, ["meeting.closed"]), (everything, ["meeting.closed", "meeting.reopened", "meeting.voided"])
    ]
    meeting, _ = closed_meeting(client, auth)
    # a close that is refused writes nothing to the outbox
    assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 409
    assert client.post(f"/api/v1/meetings/{meeting}/reopen", json={"reason": "复核"}, headers=auth).status_code == 200
    assert [d["event"] for d in deliveries(client, auth, closes_only)] == ["meeting.closed"]
    assert [d["event"] for d in deliveries(client, auth, everything)] == ["meeting.closed", "meeting.reopened"]

    assert client.delete(f"/api/v1/webhooks/{everything}", headers=auth).status_code == 204
    assert [w["id"] for w in client.get("/api/v1/webhooks", headers=auth).json()] == [closes_only]
    assert {d["status"] for d in deliveries(client, auth, everything)} == {"cancelled"}
    with database.reading() as conn:
        assert conn.execute(
            select(WebhookEndpoint.secret).where(WebhookEndpoint.id == everything)  # type: ignore[arg-type]
        ).scalar_one() == ""
        audit = conn.execute(text("SELECT detail FROM audit_event WHERE action = 'webhook.create'")).scalars().all()
    assert "pw" not in "".join(audit)
    cancelled = deliveries(client, auth, everything)[0]["id"]
    r = client.post(f"/api/v1/webhook-deliveries/{cancelled}/resend", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "webhook_deleted")
    assert client.delete(f"/api/v1/webhooks/{everything}", headers=auth).status_code == 404
    r = client.post("/api/v1/webhook-deliveries/nope/resend", headers=auth)
    assert (r.status_code, r.json()["detail"]) == (404, "找不到推送记录 nope")


# ---- several workers ----------------------------------------------------------------------------


def test_workers_side_by_side_never_send_a_delivery_twice(settings: Settings, database: Database,
                                                          auth: dict[str, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "CLAIM_BATCH", 3)
    calm = quick(settings, webhook_worker=False)
    with Receiver() as receiver:
        with TestClient(create_app(calm, database)) as client:
            for _ in range(12):
                register(client, auth, receiver.url)
            closed_meeting(client, auth)

        async def drain(worker: WebhookWorker) -> None:
            async with httpx.AsyncClient(trust_env=False) as http:
                while await worker.run_once(http):
                    pass

        async def two_workers() -> None:
            first, second = create_database(calm.resolved_database_url), create_database(calm.resolved_database_url)
            try:
                await asyncio.gather(drain(WebhookWorker(first, calm)), drain(WebhookWorker(second, calm)))
            finally:
                first.dispose()
                second.dispose()

        asyncio.run(two_workers())
    ids = [request[0] for request in receiver.requests]
    assert len(ids) == 12
    assert len(set(ids)) == 12
    assert receiver.duplicates == 0


def test_a_claimed_row_is_skipped_not_waited_for(settings: Settings, database: Database,
                                                 auth: dict[str, str]) -> None:
    if database.is_sqlite:
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises claims under its write lock")
    with TestClient(create_app(quick(settings, webhook_worker=False), database)) as client:
        for _ in range(3):
            register(client, auth, "https://scoring.example/h")
        closed_meeting(client, auth)
    with database.session() as holder, database.session() as other:
        locked = holder.scalars(
            select(WebhookDelivery).order_by(WebhookDelivery.id).limit(1).with_for_update()  # type: ignore[arg-type]
        ).one()
        started = time.monotonic()
        claimed = store.claim_deliveries(session=other, lease_seconds=60, limit=10)
        assert time.monotonic() - started < 2
        assert len(claimed) == 2
        assert locked.id not in {c.id for c in claimed}
        holder.rollback()


# ---- pure parts ---------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"meeting.closed"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1700000000", body) == "sha256=" + expected
    header = signature(SECRET, "1700000000", body)
    assert verify_signature(SECRET, "1700000000", body, header, now=1700000100)
    assert not verify_signature("another-secret-of-enough-length", "1700000000", body, header, now=1700000100)
    assert not verify_signature(SECRET, "1700000000", body + b" ", header, now=1700000100)
    assert not verify_signature(SECRET, "1700000000", body, header, now=1700000000 + 301)
    assert not verify_signature(SECRET, "-1", body, header, now=1700000100)


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (30, 3600)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, seconds: float) -> None:
    assert backoff(attempt, base=30, cap=3600) == seconds


def test_default_schedule_retries_for_more_than_a_day() -> None:
    settings = Settings(secret_key="x" * 40)  # type: ignore[arg-type]
    start = now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    attempt = 1
    while (step := decide(attempt=attempt, status_code=503, now=now, retry_from=start, settings=settings)).status == "pending":
        assert step.next_attempt_at is not None
        now, attempt = step.next_attempt_at, attempt + 1
    assert step.status == "failed"
    assert now - start >= dt.timedelta(hours=24)
    assert decide(attempt=1, status_code=204, now=start, retry_from=start, settings=settings).status == "delivered"
    assert decide(attempt=1, status_code=301, now=start, retry_from=start, settings=settings).status == "pending"
