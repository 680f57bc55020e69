"""Settings refuse known secrets; the CLI prepares an empty database once and prints a key once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from app import cli, store
from app.db import create_database
from app.models import ApiKey, Meeting, Unit
from app.settings import Settings


@pytest.mark.parametrize("secret", ["changeme", "secret", "CHANGEME ", "short-but-unknown"])
def test_known_or_short_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="known default or shorter than 32"):
        Settings(secret_key=secret)  # type: ignore[arg-type]


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.secret()
    assert len(first) == 64
    assert (tmp_path / "secret_key").read_text() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Settings(data_dir=tmp_path).secret() == first


def test_prepare_seeds_an_empty_database_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path)
    key, meeting_id = cli.prepare(settings)
    assert key is not None and key.startswith("ob_")
    assert meeting_id == 1
    assert cli.prepare(settings) == (None, None)
    database = create_database(settings.resolved_database_url)
    with database.session() as session:
        assert session.execute(select(func.count()).select_from(Unit)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(Meeting)).scalar_one() == 1
        assert store.authenticate_api_key(session=session, key=key) is not None
        stored = session.scalars(select(ApiKey)).all()
        assert [k.key_hash for k in stored] != [key]
        assert all(key not in repr(k.__dict__) for k in stored)
    database.dispose()


def test_create_api_key_prints_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(tmp_path))
    assert cli.main(["create-api-key", "main-system", "--scopes", "export"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("ob_") and len(key) == 46
    assert "只显示这一次" in out.err
    database = create_database(f"sqlite:///{tmp_path / 'onsite-ballot.db'}")
    with database.session() as session:
        row = store.authenticate_api_key(session=session, key=key)
        assert row is not None
        assert (row.name, row.scopes) == ("main-system", "export")
    database.dispose()
