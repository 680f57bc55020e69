"""Settings refuse known secrets; the CLI prepares an empty database once and prints a key once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from app import cli, store
from app.db import create_database
from app.main import create_app
from app.settings import SecretFileError, Settings
from app.tables import ApiKey, Meeting, Unit


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


def test_a_blank_secret_of_full_length_is_refused() -> None:
    with pytest.raises(ValidationError, match="known default or shorter than 32"):
        Settings(secret_key=" " * 40)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"short-but-kept-in-a-file", b"changeme" + b" " * 30, b"\xff" * 40],
    ids=["empty", "newline", "short", "known-default", "not-ascii"],
)
def test_a_secret_file_that_cannot_be_trusted_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    (tmp_path / "secret_key").write_bytes(content)
    with pytest.raises(SecretFileError, match="secret key file"):
        Settings(data_dir=tmp_path).secret()
    # The command says so plainly and exits 2, before it touches the database.
    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(tmp_path))
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "密钥文件" in err and "Traceback" not in err
    assert not (tmp_path / "onsite-ballot.db").exists()
    with pytest.raises(SecretFileError):
        create_app(Settings(data_dir=tmp_path))


def test_a_full_disk_leaves_no_secret_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(SecretFileError, match="disk full"):
        Settings(data_dir=tmp_path).secret()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    # The next start, with room on the disk, makes a whole key.
    key = Settings(data_dir=tmp_path).secret()
    assert len(key) == 64 and (tmp_path / "secret_key").read_text() == key


def test_two_processes_starting_together_keep_one_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link
    theirs = "t" * 64

    def another_process_won(src: str, dst: str) -> None:
        Path(dst).write_text(theirs)  # the other process linked its key first
        real_link(src, dst)

    monkeypatch.setattr(os, "link", another_process_won)
    assert Settings(data_dir=tmp_path).secret() == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]


# ---- issue #14, point 14: create-admin where people run it ------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"ONSITE_BALLOT_PORT": "8123"}, "http://127.0.0.1:8123"),
        ({"ONSITE_BALLOT_HOST": "0.0.0.0", "ONSITE_BALLOT_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"ONSITE_BALLOT_HOST": "10.1.2.3", "ONSITE_BALLOT_PORT": "9000"}, "http://10.1.2.3:9000"),
        ({"ONSITE_BALLOT_PORT": "9000", "ONSITE_BALLOT_BASE_URL": "https://ballot.example.org"},
         "https://ballot.example.org"),
    ],
)
def test_the_base_url_follows_the_configured_address(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().base_url == expected


def test_create_admin_prints_the_login_url_on_the_configured_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONSITE_BALLOT_PORT", "8123")
    assert cli.main(["migrate"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    assert cli.main(["create-admin", "root"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8123/login" in out
    assert ":8000" not in out


def test_create_admin_in_a_folder_without_the_service_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ONSITE_BALLOT_DATA_DIR", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    assert cli.main(["create-admin", "root"]) == 2
    err = capsys.readouterr().err
    database = (tmp_path / "data" / "onsite-ballot.db").resolve()
    assert f"找不到数据库 {database}" in err
    assert f"no database at {database}" in err
    assert not (tmp_path / "data").exists()
