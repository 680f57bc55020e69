"""A real server and a real headless Chromium for the browser tests.

The server is uvicorn on a free 127.0.0.1 port, in a thread, against a fresh SQLite file.
Chromium is Debian's package, driven by Playwright through ``executable_path``: Playwright's own
browser download cannot work here. Without Chromium or Playwright the tests skip, saying why.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app import store
from app.db import create_database
from app.main import create_app
from app.migrate import upgrade
from app.redact import RedactPhonePaths
from app.scoring import canonical_json
from app.settings import Settings
from tests.conftest import TEST_SECRET, kept_ballots

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The phone the issue names: 360 x 640 CSS pixels.
PHONE = {"width": 360, "height": 640}
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SERVER_START_SECONDS = 15


@dataclass
class Server:
    base: str
    api_key: str
    database: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10)

    def meeting(self, *, mode: str = "cards", attendance: int = 35, title: str = "2026年度党建工作述职评议会") -> int:
        """A new open meeting (default template) of a new unit; its id."""
        with self.api() as api:
            unit = f"U{time.monotonic_ns() % 10**9}"
            r = api.post("/api/v1/units", json={"code": unit, "name": "省机关事务管理局", "category": "party_gov"})
            assert r.status_code == 201, r.text
            r = api.post("/api/v1/meetings", json={"unit_code": unit, "year": 2026, "date": "2026-12-03",
                                                   "title": title, "mode": mode, "attendance": attendance})
            assert r.status_code == 201, r.text
            meeting_id: int = r.json()["id"]
            r = api.post(f"/api/v1/meetings/{meeting_id}/open")
            assert r.status_code == 200, r.text
        return meeting_id

    def codes(self, meeting_id: int, count: int) -> list[str]:
        with self.api() as api:
            r = api.post(f"/api/v1/meetings/{meeting_id}/tokens", json={"count": count})
            assert r.status_code == 201, r.text
            return [token["code"] for token in r.json()["tokens"]]

    def ballots(self, meeting_id: int) -> list[tuple[str, str | None]]:
        """The kept ballots' (answers, comment), from the database file: mixed, or still sealed and
        opened with the test server's keys."""
        database = create_database(f"sqlite:///{self.database}")
        try:
            kept = kept_ballots(database, meeting_id)
        finally:
            database.dispose()
        return [(canonical_json(ballot.answers), ballot.comment) for ballot in kept]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("browser") / "ballots.db"
    url = f"sqlite:///{path}"
    database = create_database(url)
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
        key = store.create_api_key(session=session, name="browser-tests")
    database.dispose()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=path.parent / "data", database_url=url, secret_key=TEST_SECRET,  # type: ignore[arg-type]
                        environment="test", base_url=base)
    # With the access log on, as a deployment that starts uvicorn by hand would have it, and the
    # filter the service puts on it: test_phone checks that its lines name no code.
    access = logging.getLogger("uvicorn.access")
    access.addFilter(redact_filter := RedactPhonePaths())
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, access_log=True,
                            log_config=None, lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield Server(base=base, api_key=key, database=path)
    uv.should_exit = True
    thread.join(SERVER_START_SECONDS)
    access.removeFilter(redact_filter)


# Per module: Playwright's sync API keeps an event loop running in this thread while it is open,
# and tests after the browser tests (asyncio.run) must not find one.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium: install Debian's package (apt-get install chromium); .ci/run does")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A fresh phone: its own cookies and storage, 360 x 640, touch, Chinese."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="zh-CN")
    context.set_default_timeout(5000)
    yield context
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
