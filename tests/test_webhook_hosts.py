"""Webhooks cannot be aimed at this machine, a private network, link-local or metadata addresses:
refused at registration and again at send time, after DNS, unless the host is allowed by name."""

from __future__ import annotations

import ipaddress

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import store
from app.db import Database
from app.main import create_app
from app.settings import Settings
from app.tables import WebhookEndpoint
from app.webhooks import refused_address
from tests.test_webhooks import SECRET, Receiver, closed_meeting, deliveries, quick, wait_until

REFUSED_URLS = [
    "http://127.0.0.1:5432/",
    "http://localhost:22/",  # a name: refused after it resolves to 127.0.0.1
    "http://LocalHost/x",
    "http://0x7f.1/",  # 127.0.0.1 in the short hexadecimal form resolvers still accept
    "http://169.254.169.254/latest/meta-data/iam/",  # the cloud metadata service
    "http://[fd00:ec2::254]/latest/",  # its IPv6 twin
    "http://10.1.2.3/hook",
    "http://192.168.1.20:8080/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://0.0.0.0:8000/",
    "http://[::1]:8000/",
    "http://[::ffff:127.0.0.1]/",  # IPv4 inside IPv6
    "http://[64:ff9b::a9fe:a9fe]/",  # 169.254.169.254 through NAT64
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://224.0.0.1/",  # multicast
]


def webhook_count(database: Database) -> int:
    with database.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(WebhookEndpoint)).scalar_one())


@pytest.mark.parametrize(
    ("address", "refused"),
    [("127.0.0.1", True), ("10.0.0.5", True), ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True),
     ("::1", True), ("fd00:ec2::254", True), ("::ffff:127.0.0.1", True), ("64:ff9b::7f00:1", True),
     ("2002:7f00:1::", True), ("224.0.0.1", True), ("203.0.113.5", True),  # documentation range: not routable
     ("8.8.8.8", False), ("2001:4860:4860::8888", False), ("::ffff:8.8.8.8", False)],
)
def test_which_addresses_are_refused(address: str, refused: bool) -> None:
    assert refused_address(ipaddress.ip_address(address)) is refused


def test_registration_refuses_local_private_and_metadata_hosts(client: TestClient, auth: dict[str, str],
                                                               database: Database) -> None:
    for url in REFUSED_URLS:
        r = client.post("/api/v1/webhooks", json={"url": url, "secret": SECRET}, headers={**auth, "Accept-Language": "en"})
        assert (r.status_code, r.json()["code"]) == (422, "webhook_address_refused"), url
        assert "ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS" in r.json()["detail"]
    assert webhook_count(database) == 0
    r = client.post("/api/v1/webhooks", json={"url": "http://169.254.169.254/", "secret": SECRET}, headers=auth)
    assert r.json()["detail"] == (
        "Webhook 主机 169.254.169.254 指向本机、内网、链路本地或云平台元数据地址（169.254.169.254），不能推送；"
        "推送到内网系统时，请在 ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS 中列出该主机")
    # A public address is fine; so is a name that does not resolve here (it is checked again at send time).
    for url in ("https://8.8.8.8/hook", "https://scoring.example/hook"):
        assert client.post("/api/v1/webhooks", json={"url": url, "secret": SECRET}, headers=auth).status_code == 201


def test_an_allowed_intranet_host_may_be_registered(settings: Settings, database: Database,
                                                    auth: dict[str, str]) -> None:
    allowed = settings.model_copy(update={"webhook_allowed_hosts": "localhost, 10.1.2.3"})
    with TestClient(create_app(allowed, database)) as client:
        for url in ("http://localhost:9000/hook", "http://10.1.2.3/hook"):
            assert client.post("/api/v1/webhooks", json={"url": url, "secret": SECRET}, headers=auth).status_code == 201
        r = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1/hook", "secret": SECRET}, headers=auth)
        assert r.status_code == 422  # allowed by name means that name, not what it resolves to


def test_send_time_refuses_a_host_that_resolves_to_this_machine(settings: Settings, database: Database,
                                                                auth: dict[str, str]) -> None:
    """An endpoint stored when its name pointed elsewhere (or by an older version) is checked again
    after DNS, every time: the receiver on 127.0.0.1 never hears from us, and the log says why."""
    with Receiver() as receiver, TestClient(create_app(quick(settings), database)) as client:
        with database.session() as session:
            webhook = store.create_webhook(session=session, actor="test", url=receiver.url.replace("127.0.0.1", "localhost"),
                                           secret=SECRET, events=["meeting.closed"]).id
        closed_meeting(client, auth)
        wait_until(lambda: deliveries(client, auth, webhook)[0]["attempts"] >= 2)
        log = deliveries(client, auth, webhook)[0]["log"]
        assert {(a["status_code"], a["error"]) for a in log} == {(None, "address_refused")}
        assert receiver.requests == []
