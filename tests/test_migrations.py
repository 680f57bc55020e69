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
