"""Alembic makes exactly the schema the models describe, on each backend."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app.db import Database, metadata
from app.migrate import at_head


def test_upgrade_to_head_matches_the_models(database: Database) -> None:
    assert at_head(database.write)
    with database.write.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_ballot_table_has_no_rowid_on_sqlite(database: Database) -> None:
    if not database.is_sqlite:
        pytest.skip("WITHOUT ROWID is SQLite's; PostgreSQL tables have no rowid to leak")
    with database.reading() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ballot'")).scalar_one()
    assert sql.rstrip().endswith("WITHOUT ROWID")


def test_ballot_side_holds_no_time_address_or_token(database: Database) -> None:
    inspector = inspect(database.write)
    assert [c["name"] for c in inspector.get_columns("ballot")] == [
        "id", "meeting_id", "group_key", "answers", "total", "flagged", "comment",
    ]
    assert [c["name"] for c in inspector.get_columns("ballot_token")] == [
        "hash", "meeting_id", "group_key", "used", "void", "fingerprint",
    ]
    assert inspector.get_foreign_keys("ballot")[0]["referred_table"] == "meeting"
    assert [fk["referred_table"] for fk in inspector.get_foreign_keys("ballot_token")] == ["meeting"]


def test_units_that_exist_get_a_time_when_past_reviews_are_added(database: Database) -> None:
    """2026-12-02_remember_past_reviews on a database that has units (issue #14, point 12)."""
    from alembic import command

    from app.migrate import alembic_config, upgrade

    config = alembic_config(database.url)
    with database.write.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "3c1f0d7e9a42")
        conn.commit()
    with database.write.begin() as conn:
        conn.execute(text("INSERT INTO unit (code, name, category_key) VALUES ('OLD1', '旧单位', 'party_gov')"))
    upgrade(database.write)
    with database.reading() as conn:
        created = conn.execute(text("SELECT created_at FROM unit WHERE code = 'OLD1'")).scalar_one()
        years = conn.execute(text("SELECT count(*) FROM unit_review_year")).scalar_one()
    assert created is not None and years == 0
    assert at_head(database.write)
