"""Fixtures: every database test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL names one.

SQLite tests get a copy of a database migrated once per run; PostgreSQL tests share one
migrated database and start from truncated tables.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app import store
from app.db import Database, create_database, metadata
from app.figures import StoredBallot
from app.main import create_app
from app.migrate import upgrade
from app.sealing import Sealer, ServerKeys
from app.settings import Settings
from app.tables import MeetingSeal, SealedBallot

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PG_URL = os.environ.get("TEST_DATABASE_URL", "")


def side_database(purpose: str) -> str:
    """A second database for tests that start servers, named after TEST_DATABASE_URL's own
    (test_h12 -> test_h12_crash): several suites on one PostgreSQL server never share one."""
    from sqlalchemy.engine import make_url

    return f"{make_url(PG_URL).database}_{purpose}"


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set"))]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    database = create_database(f"sqlite:///{path}")
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> str:
    database = create_database(PG_URL)
    with database.write.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(database.write)
    database.dispose()
    return PG_URL


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "onsite-ballot.db"
        shutil.copy(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("migrated_postgres")
    database = create_database(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with database.write.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    with database.session() as session:
        store.seed_reference(session=session)
    database.dispose()
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key=TEST_SECRET,  # type: ignore[arg-type]
        environment="test", base_url="http://testserver", mix_interval_seconds=0,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = create_database(settings.resolved_database_url)
    yield db
    db.dispose()


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database)) as test_client:
        yield test_client


@pytest.fixture
def api_key(database: Database) -> str:
    with database.session() as session:
        return store.create_api_key(session=session, name="tests")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


# The keys a test server derives from TEST_SECRET: the ledger's code key and the sealing root.
KEYS = ServerKeys.from_secret(TEST_SECRET)
ALL_A = {f"p{i:02d}": "A" for i in range(1, 20)}


def open_meeting(client: TestClient, auth: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A unit, and an open meeting for it with the default template."""
    code = overrides.pop("unit_code", "JL001")
    if client.get("/api/v1/units", headers=auth).json() == [] or all(
        u["code"] != code for u in client.get("/api/v1/units", headers=auth).json()
    ):
        r = client.post("/api/v1/units", json={"code": code, "name": "测试单位", "category": "party_gov"}, headers=auth)
        assert r.status_code == 201, r.text
    body = {"unit_code": code, "year": 2026, "date": "2026-12-03", "title": "述职评议会", "mode": "cards",
            "attendance": 35, **overrides}
    r = client.post("/api/v1/meetings", json=body, headers=auth)
    assert r.status_code == 201, r.text
    meeting: dict[str, Any] = r.json()
    r = client.post(f"/api/v1/meetings/{meeting['id']}/open", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def kept_ballots(database: Database, meeting_id: int) -> list[StoredBallot]:
    """Every ballot the database keeps for a meeting: those in the box, and those still sealed,
    opened with the test server's keys (which only a holder of the secret can do)."""
    with database.reading() as conn:
        kept = store.meeting_ballots(conn=conn, meeting_id=meeting_id)
        salt = conn.execute(select(MeetingSeal.salt).where(MeetingSeal.meeting_id == meeting_id)).scalar()
        sealed = conn.execute(select(SealedBallot.sealed).where(SealedBallot.meeting_id == meeting_id)).scalars().all()
    if sealed:
        assert salt is not None, "sealed ballots wait for a meeting whose key is gone"
        sealer = Sealer(KEYS.meeting_key(salt), meeting_id, size=0)
        for content in map(sealer.open, sealed):
            kept.append(StoredBallot(content.group, content.answers, content.comment))
    return kept


def settle(client: TestClient) -> None:
    """Wait until the server's writer has stored what was sent and mixed every group that is due."""
    client.portal.call(client.app.state.writer.idle)  # type: ignore[attr-defined, union-attr]


def mint(client: TestClient, auth: dict[str, str], meeting_id: int, count: int, group: str | None = None) -> list[str]:
    r = client.post(f"/api/v1/meetings/{meeting_id}/tokens", json={"count": count, "group": group}, headers=auth)
    assert r.status_code == 201, r.text
    return [t["code"] for t in r.json()["tokens"]]
