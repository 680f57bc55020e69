"""schemathesis against the app's own OpenAPI: no 5xx, and every answer matches its declared schema.

Runs on a SQLite database with a unit and an open meeting, as an admin API key, with a bounded
number of examples per operation so that `make test` stays quick.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app import store
from app.db import create_database
from app.main import create_app
from app.migrate import upgrade
from app.schemas import MeetingCreate
from app.settings import Settings
from tests.conftest import TEST_SECRET

EXAMPLES_PER_OPERATION = 12
# No 5xx, and every answer as documented: its status, content type and schema. Not "schema-valid data
# is accepted": rules such as "maxima sum to 100" or "a password of 10 characters" are no JSON Schema,
# and answering them with a named 422 is the documented behaviour.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          unsupported_method]
# An endless event stream cannot be answered in full; it is tested in test_push and test_live.
SKIPPED = ("/api/v1/meetings/{meeting_id}/events",)


def _fuzzed_app() -> tuple[Any, str]:
    # Built when the module is collected: schemathesis reads the schema to make one test per operation.
    folder = Path(tempfile.mkdtemp(prefix="onsite-fuzz-"))
    url = f"sqlite:///{folder / 'fuzz.db'}"
    database = create_database(url)
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
        store.create_unit(session=session, actor="t", code="JL001", name="单位", category="party_gov")
        meeting = store.create_meeting(session=session, actor="t", body=MeetingCreate(
            unit_code="JL001", year=2026, date="2026-12-03", title="t", attendance=30))  # type: ignore[arg-type]
        store.open_meeting(session=session, actor="t", meeting_id=meeting.id)  # type: ignore[arg-type]
        key = store.create_api_key(session=session, name="fuzz")
    database.dispose()
    app_settings = Settings(data_dir=folder / "data", database_url=url, secret_key=TEST_SECRET,  # type: ignore[arg-type]
                            environment="test", base_url="http://testserver", webhook_worker=False)
    return create_app(app_settings), key


APP, KEY = _fuzzed_app()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_answers_as_documented(case: Any) -> None:
    if case.path in SKIPPED:
        pytest.skip("an endless event stream")
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)
