"""Nothing the service logs carries a credential, a ballot code or a webhook's query string: the log
of a real server delivering to a real receiver on this machine, read back after the fact."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from app.redact import RedactSecrets, redact_secrets
from bench.service import Api, create_api_key, free_port, running, service, service_env
from tests.conftest import ALL_A
from tests.test_webhooks import SECRET, wait_until

PASSWORD = "pa55-word-in-url"
TOKEN = "query-token-7f3a9c"


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        ('HTTP Request: POST http://main:pa55@10.0.0.5:8080/hooks?access_token=abc "HTTP/1.1 200 OK"',
         'HTTP Request: POST http://…@10.0.0.5:8080/hooks?… "HTTP/1.1 200 OK"'),
        ("connect to https://scoring.example/h?key=1&b=2#frag failed", "connect to https://scoring.example/h?… failed"),
        ("GET /b/K7MQ2X9PAR HTTP/1.1", "GET /b/… HTTP/1.1"),
        ("see postgresql+psycopg://ballot:hunter2@db/ballots", "see postgresql+psycopg://…@db/ballots"),
        ("no address here: 42 ballots in 3 ms", "no address here: 42 ballots in 3 ms"),
    ],
)
def test_redact_secrets(line: str, logged: str) -> None:
    assert redact_secrets(line) == logged


def test_the_filter_rewrites_a_record_with_arguments() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", "https://u:p@h/x?t=1"),
                               None)
    assert RedactSecrets().filter(record) is True
    assert (record.getMessage(), record.args) == ("HTTP Request: POST https://…@h/x?…", None)


class Receiver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append((self.path, self.headers.get("Authorization", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.mark.slow
def test_a_real_delivery_leaves_no_secret_in_the_servers_log(tmp_path: Path) -> None:
    receiver = Receiver()
    env = {**service_env(tmp_path / "data", free_port()), "ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
           "ONSITE_BALLOT_WEBHOOK_POLL_SECONDS": "0.1"}
    key = create_api_key(env, "logs-test")
    log = tmp_path / "server.log"
    try:
        with running(service(env, 1, log)) as server:
            api = Api(server.base, key)
            url = f"http://main-system:{PASSWORD}@127.0.0.1:{receiver.port}/hooks/onsite?access_token={TOKEN}"
            r = api.http.post("/api/v1/webhooks", json={"url": url, "secret": SECRET})
            assert r.status_code == 201, r.text
            api.unit("JL001")
            meeting = api.open_meeting("JL001", "述职评议会", 5)
            codes = api.mint(meeting, 5)
            for code in codes:
                assert httpx.post(f"{server.base}/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201
            assert httpx.get(f"{server.base}/b/{codes[0]}").status_code == 200
            api.close(meeting)
            api.http.close()
            wait_until(lambda: len(receiver.seen) == 1)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    # The receiver got everything it was given: the query string and the credentials.
    assert receiver.seen[0][0] == f"/hooks/onsite?access_token={TOKEN}"
    assert receiver.seen[0][1].startswith("Basic ")
    text = log.read_text("utf-8")
    assert "onsite-ballot 已启动" in text  # the log is the server's, and it was written
    for secret in (PASSWORD, TOKEN, "access_token", key, *codes):
        assert secret not in text, secret
