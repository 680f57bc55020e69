"""The OpenAPI document for the main system's developers (issue #14, point 15): short, stable
operation ids, an example on every body, and a client generated from it that works."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app import report, schemas, store, templates
from app.db import create_database
from app.main import create_app
from app.migrate import upgrade
from app.routes import api_admin, cards
from app.routes.openapi import EXAMPLES
from app.settings import Settings
from tests.conftest import TEST_SECRET

OPERATIONS = {
    "ballots.submit", "units.create", "units.list", "units.update", "units.delete", "units.import",
    "templates.list", "templates.get", "templates.create", "meetings.create", "meetings.list", "meetings.get",
    "meetings.open", "meetings.close", "meetings.reopen", "meetings.mint_tokens", "meetings.void_tokens",
    "meetings.cards", "meetings.screen", "meetings.tally", "meetings.result", "meetings.events", "meetings.report",
    "meetings.audit_export", "meetings.void", "meetings.delete", "results.list", "results.schema", "results.overview", "results.composite",
    "accounts.list", "accounts.create", "accounts.update", "api_keys.list", "api_keys.create", "api_keys.revoke",
    "audit.list", "webhooks.create", "webhooks.list", "webhooks.delete", "webhooks.deliveries", "webhooks.delivery",
    "webhooks.resend", "health.live", "health.ready",
}


def operations(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in spec["paths"].values():
        for operation in path.values():
            yield operation
            for callback in operation.get("callbacks", {}).values():
                for callback_path in callback.values():
                    yield from callback_path.values()


def test_operation_ids_are_short_and_stable(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    ids = [operation["operationId"] for operation in operations(spec)]
    assert len(ids) == len(set(ids))
    assert set(ids) == OPERATIONS | {"webhooks.result_event"}
    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", operation_id) for operation_id in ids)


def test_every_request_and_response_body_has_an_example(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    missing = []
    for operation in operations(spec):
        bodies = [("request", operation.get("requestBody", {})), *operation.get("responses", {}).items()]
        for status, body in bodies:
            for media, content in body.get("content", {}).items():
                if "example" not in content and "examples" not in content:
                    missing.append((operation["operationId"], status, media))
    assert missing == []
    submit = spec["paths"]["/api/v1/ballots"]["post"]
    assert submit["responses"]["201"]["content"]["application/json"]["example"]["status"] == "counted"
    assert submit["responses"]["409"]["content"]["application/json"]["example"]["code"] == "meeting_transition"


MODULES = (schemas, report, api_admin, cards, templates)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_written_example_is_valid_for_its_model(name: str) -> None:
    model = next(getattr(module, name) for module in MODULES if hasattr(module, name))
    assert issubclass(model, BaseModel)
    model.model_validate(EXAMPLES[name])


# ---- a client generated from the live OpenAPI -------------------------------------------------


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = f"sqlite:///{tmp_path / 'client.db'}"
    database = create_database(url)
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
        key = store.create_api_key(session=session, name="main-system")
    database.dispose()
    config = uvicorn.Config(
        create_app(Settings(data_dir=tmp_path, database_url=url, secret_key=TEST_SECRET,  # type: ignore[arg-type]
                            environment="test", base_url="http://127.0.0.1", webhook_worker=False)),
        host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(15)


@pytest.mark.slow
def test_a_generated_client_calls_the_api(live_server: tuple[str, str], tmp_path: Path) -> None:
    import httpx

    base, key = live_server
    spec = tmp_path / "openapi.json"
    spec.write_text(httpx.get(f"{base}/api/v1/openapi.json", timeout=10).text, "utf-8")
    out = tmp_path / "onsite_ballot_client"  # with --meta none, this folder is the package
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run([str(generator), "generate", "--path", str(spec), "--output-path", str(out),
                           "--meta", "none"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    package = out.name
    sys.path.insert(0, str(out.parent))
    try:
        client_module = importlib.import_module(f"{package}.client")
        units_create = importlib.import_module(f"{package}.api.units.units_create")
        meetings_create = importlib.import_module(f"{package}.api.meetings.meetings_create")
        meetings_open = importlib.import_module(f"{package}.api.meetings.meetings_open")
        mint = importlib.import_module(f"{package}.api.meetings.meetings_mint_tokens")
        submit = importlib.import_module(f"{package}.api.ballots.ballots_submit")
        close = importlib.import_module(f"{package}.api.meetings.meetings_close")
        results_list = importlib.import_module(f"{package}.api.results_export.results_list")
        generated = importlib.import_module(f"{package}.models")
    finally:
        sys.path.pop(0)
    with client_module.AuthenticatedClient(base_url=base, token=key) as client, \
            client_module.Client(base_url=base) as public:
        check_calls(client, public, generated, units_create, meetings_create, meetings_open, mint, submit, close,
                    results_list)
    assert json.loads(spec.read_text("utf-8"))["paths"]["/api/v1/results"]["get"]["operationId"] == "results.list"


def check_calls(client: Any, public: Any, generated: Any, units_create: Any, meetings_create: Any,
                meetings_open: Any, mint: Any, submit: Any, close: Any, results_list: Any) -> None:
    unit = units_create.sync(client=client, body=generated.UnitCreate(code="JL001", name="省直机关事务管理局",
                                                                      category="party_gov"))
    assert (unit.code, unit.category_name) == ("JL001", "党政机关")
    meeting = meetings_create.sync(client=client, body=generated.MeetingCreate.from_dict(
        {"unit_code": "JL001", "year": 2026, "date": "2026-12-03", "title": "述职评议会", "attendance": 5}))
    assert meetings_open.sync(meeting.id, client=client).state.value == "open"
    tokens = mint.sync(meeting.id, client=client, body=generated.MintBody(count=5)).tokens
    answers = {f"p{i:02d}": "B" for i in range(1, 20)}
    for token in tokens:
        receipt = submit.sync(client=public, body=generated.BallotSubmit.from_dict({"token": token.code,
                                                                                    "answers": answers}))
        assert receipt.status.value == "counted"
    # The body is optional on the wire; a generated client sends an empty one.
    closed = close.sync(meeting.id, client=client, body=generated.CloseBody())
    assert closed.figures.score.rounded == "80.00"
    page = results_list.sync(client=client, year=2026)
    assert [(r.unit_code, r.score.exact, r.closed_at.tzinfo is not None) for r in page.results] == [("JL001", "80", True)]
