"""Alembic makes exactly the schema the models describe, on each backend."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import store
from app.db import Database, create_database, metadata
from app.figures import ballot_set_digest
from app.main import create_app
from app.migrate import alembic_config, at_head, upgrade
from app.scoring import canonical_json
from app.settings import Settings
from tests.conftest import ALL_A, BACKENDS, KEYS, PG_URL, TEST_SECRET


def test_upgrade_to_head_matches_the_models(database: Database) -> None:
    assert at_head(database.write)
    with database.write.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


@pytest.mark.parametrize("table", ["ballot", "ballot_token", "sealed_ballot"])
def test_ballot_ledger_and_sealed_tables_have_no_rowid_on_sqlite(database: Database, table: str) -> None:
    if not database.is_sqlite:
        pytest.skip("WITHOUT ROWID is SQLite's; PostgreSQL tables have no rowid to leak")
    with database.reading() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar_one()
    assert sql.rstrip().endswith("WITHOUT ROWID")


def test_ballot_side_holds_no_time_address_or_token(database: Database) -> None:
    inspector = inspect(database.write)
    assert [c["name"] for c in inspector.get_columns("ballot")] == [
        "id", "meeting_id", "group_key", "answers", "total", "flagged", "comment",
    ]
    # No fingerprint of a ballot beside its code: a spent code answers the same for anything.
    assert [c["name"] for c in inspector.get_columns("ballot_token")] == [
        "hash", "meeting_id", "group_key", "used", "void",
    ]
    assert [c["name"] for c in inspector.get_columns("sealed_ballot")] == ["id", "meeting_id", "sealed"]
    assert inspector.get_foreign_keys("ballot")[0]["referred_table"] == "meeting"
    assert [fk["referred_table"] for fk in inspector.get_foreign_keys("ballot_token")] == ["meeting"]


BEFORE_SEALING = "3c1f0d7e9a42"  # the last revision before ballots were sealed until mixed


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database of its own, with no schema yet."""
    if request.param == "sqlite":
        database = create_database(f"sqlite:///{tmp_path / 'old.db'}")
        yield database
        database.dispose()
        return
    name = make_url(PG_URL).database + "_migration"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    database = create_database(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    yield database
    database.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_sealing_migration_keeps_every_code_and_ballot_and_drops_the_fingerprints(
    empty_database: Database, tmp_path: Path
) -> None:
    database = empty_database
    config = alembic_config(database.url)
    with database.write.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, BEFORE_SEALING)
    with database.session() as session:
        store.seed_reference(session=session)
    codes = {"open_spent": "K7MQ2X9PAR", "open_unspent": "K7MQ2X9PAS", "closed_spent": "23456789AB"}
    ballots = [ALL_A, {**ALL_A, "p01": "B"}]
    with database.write.begin() as conn:
        conn.execute(text("INSERT INTO unit (id, code, name, category_key) VALUES (1, 'OLD01', '旧单位', 'party_gov')"))
        for meeting_id, state in ((1, "open"), (2, "closed")):
            conn.execute(text(
                "INSERT INTO meeting (id, unit_id, year, date, title, template_id, template_version, mode, attendance,"
                " groups, trim, component_weight, flagged_rule, state, created_at) VALUES (:id, 1, 2026, '2026-12-01',"
                " 't', 'default', 1, 'cards', 10, '[]', 1, '0.4', 'count', :state, '2026-12-01 08:00:00')"
            ), {"id": meeting_id, "state": state})
            conn.execute(text("INSERT INTO tally (meeting_id, ballot_count, published_count) VALUES (:m, 1, 0)"),
                         {"m": meeting_id})
        for name, code in codes.items():
            conn.execute(text(
                "INSERT INTO ballot_token (hash, meeting_id, group_key, used, void, fingerprint)"
                " VALUES (:h, :m, NULL, :used, false, :f)"
            ), {"h": hashlib.sha256(code.encode()).hexdigest(), "m": 1 if name.startswith("open") else 2,
                "used": name.endswith("_spent"), "f": "ab" * 32 if name == "open_spent" else None})
        for meeting_id, answers in ((1, ballots[0]), (2, ballots[1])):
            conn.execute(text(
                "INSERT INTO ballot (id, meeting_id, group_key, answers, total, flagged, comment)"
                " VALUES (:id, :m, NULL, :a, '100', false, '旧意见')"
            ), {"id": secrets.token_hex(16), "m": meeting_id, "a": canonical_json(answers)})
    old_ids = _ballot_ids(database)

    upgrade(database.write, secret=TEST_SECRET)

    with database.reading() as conn:
        ledger = dict(conn.execute(text("SELECT hash, used FROM ballot_token")).all())
        assert "fingerprint" not in [c["name"] for c in inspect(conn).get_columns("ballot_token")]
        assert ledger == {KEYS.code_hash(code): name.endswith("_spent") for name, code in codes.items()}
        assert conn.execute(text("SELECT meeting_id, ballots, sealed FROM turnout ORDER BY meeting_id")).all() == [
            (1, 1, 0), (2, 1, 0)
        ]
        assert conn.execute(text("SELECT meeting_id FROM meeting_seal")).scalars().all() == [1]
        box = conn.execute(text("SELECT meeting_id, answers, comment FROM ballot ORDER BY meeting_id")).all()
    assert [(m, json.loads(a), c) for m, a, c in box] == [(1, ballots[0], "旧意见"), (2, ballots[1], "旧意见")]
    assert not set(_ballot_ids(database)) & set(old_ids)  # written anew, with new ids

    settings = Settings(data_dir=tmp_path / "data", database_url=database.url, secret_key=TEST_SECRET,  # type: ignore[arg-type]
                        environment="test", base_url="http://testserver", mix_interval_seconds=0)
    with TestClient(create_app(settings, database)) as client:
        r = client.post("/api/v1/ballots", json={"token": codes["open_unspent"], "answers": ALL_A})
        assert r.status_code == 201, r.text
        for spent in ("open_spent", "closed_spent"):
            r = client.post("/api/v1/ballots", json={"token": codes[spent], "answers": {**ALL_A, "p02": "C"}})
            assert (r.status_code, r.json()["status"]) == (200, "already_counted")


def _ballot_ids(database: Database) -> list[str]:
    with database.reading() as conn:
        return list(conn.execute(text("SELECT id FROM ballot")).scalars())


def test_units_that_exist_get_a_time_when_past_reviews_are_added(database: Database) -> None:
    """2026-12-02_remember_past_reviews on a database that has units (issue #14, point 12)."""
    from alembic import command

    from app.migrate import alembic_config, upgrade

    config = alembic_config(database.url)
    with database.write.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "8d2e5b1c7f30")  # the revision before past reviews
        conn.commit()
    with database.write.begin() as conn:
        conn.execute(text("INSERT INTO unit (code, name, category_key) VALUES ('OLD1', '旧单位', 'party_gov')"))
    upgrade(database.write)
    with database.reading() as conn:
        created = conn.execute(text("SELECT created_at FROM unit WHERE code = 'OLD1'")).scalar_one()
        years = conn.execute(text("SELECT count(*) FROM unit_review_year")).scalar_one()
    assert created is not None and years == 0
    assert at_head(database.write)


def test_migration_files_sort_in_the_order_they_apply() -> None:
    """A reader listing migrations/versions sees them in the order Alembic applies them."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    applied = [Path(revision.path).name for revision in reversed(list(script.walk_revisions()))]
    listed = sorted(path.name for path in Path(script.versions).glob("*.py"))
    assert applied == listed


def test_results_frozen_before_keep_digest_format_1_and_take_their_unit(
    client: TestClient, auth: dict[str, str], database: Database
) -> None:
    """2026-12-02_5_freeze_what_a_result_says on a database with a result closed by the code before it."""
    from tests.test_recount import closed_readme_meeting

    meeting = closed_readme_meeting(client, auth)
    config = alembic_config(database.url)
    with database.write.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "c9f8ba810a26")  # the revision before results were frozen whole
        conn.commit()
    with database.reading() as conn:
        ballots = store.meeting_ballots(conn=conn, meeting_id=meeting)
    with database.write.begin() as conn:  # what that code stored: the digest of the ballots alone
        conn.execute(text("UPDATE result SET digest = :d"), {"d": ballot_set_digest(ballots)})
    upgrade(database.write)
    with database.reading() as conn:
        row = conn.execute(text("SELECT unit_code, unit_name, category, rules, digest_format FROM result")).one()
    assert tuple(row) == ("JL001", "测试单位", "party_gov", None, 1)
    with database.session() as session:
        check = store.verify_meeting(session=session, meeting_id=meeting, k=5)
    assert (check.ok, check.computed_digest) == (True, ballot_set_digest(ballots))
    listed = client.get("/api/v1/results", headers=auth).json()["results"]
    assert [(r["unit_code"], r["digest_format"], r["digest"]) for r in listed] == [
        ("JL001", 1, ballot_set_digest(ballots))
    ]
