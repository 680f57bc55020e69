"""`onsite-ballot backup` and `restore`: a SQLite round trip, and the PostgreSQL lines they print."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import cli, store
from app.db import Database, create_database
from app.migrate import upgrade
from app.schemas import MeetingCreate
from app.tables import Ballot, BallotToken, SealedBallot, Unit
from tests.conftest import ALL_A, KEYS


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The service's SQLite file, migrated, with the CLI pointed at it through the environment."""
    data = tmp_path / "data"
    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(data))
    monkeypatch.setenv("ONSITE_BALLOT_DATABASE_URL", "")
    path = data / "onsite-ballot.db"
    database = create_database(f"sqlite:///{path}")
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
    database.dispose()
    return path


def opened(path: Path) -> Database:
    return create_database(f"sqlite:///{path}")


def add_units(path: Path, *codes: str) -> None:
    database = opened(path)
    with database.session() as session:
        for code in codes:
            store.create_unit(session=session, actor="tests", code=code, name=f"单位 {code}", category="party_gov")
    database.dispose()


def cast(path: Path, unit_code: str, ballots: int) -> None:
    database = opened(path)
    with database.session() as session:
        meeting = store.create_meeting(
            session=session,
            actor="tests",
            body=MeetingCreate(unit_code=unit_code, year=2026, date=dt.date(2026, 12, 3), title="述职评议会",
                               mode="cards", attendance=ballots),
        )
        assert meeting.id is not None
        store.open_meeting(session=session, actor="tests", meeting_id=meeting.id)
        codes = store.mint_tokens(
            session=session, actor="tests", meeting_id=meeting.id, count=ballots, group=None, keys=KEYS
        )
    with database.writing() as conn:
        spent = store.submit_batch(
            conn=conn, submissions=[store.Submission(code=c, answers=ALL_A, comment=None) for c, _ in codes], keys=KEYS
        )
    assert [o.status for o in spent.outcomes] == ["counted"] * ballots
    database.dispose()


def contents(path: Path) -> tuple[list[str], int, int]:
    """Unit codes, ballots, spent tokens."""
    database = opened(path)
    with database.reading() as conn:
        units = list(conn.execute(select(Unit.code).order_by(Unit.code)).scalars())
        ballots = conn.execute(select(func.count()).select_from(Ballot)).scalar_one()
        ballots += conn.execute(select(func.count()).select_from(SealedBallot)).scalar_one()
        spent = conn.execute(select(func.count()).select_from(BallotToken).where(BallotToken.used.is_(True))).scalar_one()
    database.dispose()
    return units, ballots, spent


def test_backup_then_restore_brings_back_the_state_at_backup(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_units(live, "A1", "A2")
    cast(live, "A1", 3)
    target = tmp_path / "backups" / "2026-12-03.db"

    assert cli.main(["backup", str(target)]) == 0
    assert f"backed up: {target}" in capsys.readouterr().out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not target.with_name(target.name + ".partial").exists()

    add_units(live, "A3")
    cast(live, "A3", 2)
    assert contents(live) == (["A1", "A2", "A3"], 5, 5)

    assert cli.main(["restore", str(target)]) == 0
    out = capsys.readouterr().out
    assert contents(live) == (["A1", "A2"], 3, 3)
    [kept] = live.parent.glob("onsite-ballot.db.before-restore-*")
    assert f"kept as {kept}" in out
    assert contents(kept) == (["A1", "A2", "A3"], 5, 5)
    with closing(sqlite3.connect(live)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with closing(sqlite3.connect(target)) as conn:
        # The backup is one self-contained file, with no -wal it would depend on.
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_backup_while_a_write_is_open_takes_only_what_is_committed(live: Path, tmp_path: Path) -> None:
    add_units(live, "A1")
    database = opened(live)
    target = tmp_path / "online.db"
    with database.writing() as conn:  # BEGIN IMMEDIATE: the service's writer holds the lock
        conn.execute(Unit.__table__.insert().values(code="UNCOMMITTED", name="x", category_key="party_gov"))  # type: ignore[attr-defined]
        assert cli.main(["backup", str(target)]) == 0
        conn.rollback()
    database.dispose()
    assert contents(target) == (["A1"], 0, 0)


def test_backup_never_overwrites(live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken.db"
    target.write_bytes(b"keep me")
    assert cli.main(["backup", str(target)]) == 1
    assert capsys.readouterr().err == f"{target} exists; a backup never overwrites a file\n"
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not a database at all, only text" * 4, "is not a SQLite database"),
        (None, "is not an onsite-ballot database (no alembic_version, ballot, ballot_token, meeting)"),
    ],
)
def test_restore_refuses_what_is_not_our_backup(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, error: str
) -> None:
    add_units(live, "A1")
    wrong = tmp_path / "wrong.db"
    if content is None:
        with closing(sqlite3.connect(wrong)) as conn:
            conn.execute("CREATE TABLE other (x)")
    else:
        wrong.write_bytes(content)
    assert cli.main(["restore", str(wrong)]) == 1
    assert error in capsys.readouterr().err
    assert contents(live) == (["A1"], 0, 0)
    assert list(live.parent.glob("*.before-restore-*")) == []


def test_postgresql_prints_the_pg_dump_and_pg_restore_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONSITE_BALLOT_DATABASE_URL", "postgresql+psycopg://ballot:s3cret@db.internal:5433/onsite")
    assert cli.main(["backup", "/var/backups/onsite.dump"]) == 2
    out = capsys.readouterr().out
    assert out == (
        "pg_dump --format=custom --no-owner --file='/var/backups/onsite.dump'"
        " 'postgresql://ballot@db.internal:5433/onsite'\n"
    )
    assert cli.main(["restore", "/var/backups/onsite.dump"]) == 2
    assert capsys.readouterr().out == (
        "pg_restore --clean --if-exists --no-owner --dbname='postgresql://ballot@db.internal:5433/onsite'"
        " '/var/backups/onsite.dump'\n"
    )
