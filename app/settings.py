"""Settings from the environment (prefix ONSITE_BALLOT_), built by a factory, never at import."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that appear in tutorials and sample files; a deployment that uses one has no secret.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "changethis",
        "dev",
        "development",
        "test",
        "password",
        "secret-key",
        "your-secret-key",
        "onsite-ballot",
    }
)
MIN_SECRET_LENGTH = 32
# With K = 1 every step of the live tally is one ballot, and with 2 a rater who knows their own
# ballot knows the other's: three is the least that hides anyone.
MIN_K_ANONYMITY = 3
SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONSITE_BALLOT_", extra="ignore")

    data_dir: Path = Path("data")
    # Empty means the embedded SQLite file data_dir/onsite-ballot.db.
    database_url: str = ""
    # What QR codes, ballot links and printed URLs point at. Unset, it follows HOST and PORT.
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    k_anonymity: int = 5
    environment: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    # How many worker processes serve this database: `serve --workers N` sets it for its workers,
    # each of which then guards its share of the guessing budget (app.guard).
    workers: int = 1
    # The reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: addresses or
    # networks, comma-separated ("127.0.0.1", "10.0.0.0/8"). Empty: none; the peer is the client.
    trusted_proxies: str = ""
    # The largest request body accepted; a 19-point ballot with a long comment is under 8 KiB.
    max_body_bytes: int = 64 * 1024
    # How long a request body may take to arrive: a phone on a weak signal sends 8 KiB in well under
    # this; a client trickling bytes to hold connections open does not.
    max_body_seconds: float = 15.0
    # How often an open meeting's sealed ballots may be mixed into the box (and its live figures
    # move), unless many are waiting (app.writer). Tests set 0 to mix as soon as a group is due.
    mix_interval_seconds: float = 1.0
    # A connection whose request head has not arrived this long after it opened (or after its first
    # byte) is closed; a worker takes at most max_connections at once and answers 503 past them
    # (lowered at start to what the open-file limit allows; see app.serving.Limits).
    request_head_seconds: float = 20.0
    max_connections: int = 2000
    # How long the ballot writer waits for one batch before it abandons it as stuck on a dead
    # database connection and runs it again on a fresh one. Unset: the backend's bound (app.db).
    writer_batch_seconds: float | None = None
    # Webhooks: the first retry waits webhook_backoff_seconds, each next one twice as long up to
    # webhook_backoff_max_seconds; a delivery is retried for webhook_retry_hours before it is
    # given up (the issue asks for at least 24 hours). Tests set these to fractions of a second.
    webhook_worker: bool = True
    webhook_poll_seconds: float = 2.0
    webhook_timeout_seconds: float = 10.0
    webhook_backoff_seconds: float = 30.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_retry_hours: float = 48.0
    # Times on pages, reports and sheets are shown in this zone; the API gives ISO 8601 with the offset.
    timezone: str = "Asia/Shanghai"
    # Webhook hosts that may be on this machine or a private network (an intranet main scoring system):
    # names or addresses exactly as in the URL, comma-separated. Any other host must resolve to public
    # addresses only (app.webhooks).
    webhook_allowed_hosts: str = ""

    @field_validator("secret_key")
    @classmethod
    def _refuse_known_defaults(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if raw.lower() in KNOWN_DEFAULT_SECRETS or len(raw) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"ONSITE_BALLOT_SECRET_KEY is a known default or shorter than {MIN_SECRET_LENGTH}"
                " characters; leave it unset to have one generated in the data folder"
            )
        return value

    @field_validator("k_anonymity")
    @classmethod
    def _k_large_enough(cls, value: int) -> int:
        if value < MIN_K_ANONYMITY:
            raise ValueError(
                f"ONSITE_BALLOT_K_ANONYMITY must be at least {MIN_K_ANONYMITY}: below that, a breakdown or a step"
                " of the live tally can single out a ballot"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"ONSITE_BALLOT_TIMEZONE {value!r} is not a time zone name such as Asia/Shanghai"
            ) from None
        return value

    @model_validator(mode="after")
    def _base_url_from_address(self) -> Settings:
        # Printed login links and QR codes must name the port the service really listens on.
        if "base_url" not in self.model_fields_set:
            host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
            host = f"[{host}]" if ":" in host else host
            self.base_url = f"http://{host}:{self.port}"
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("workers")
    @classmethod
    def _workers_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("ONSITE_BALLOT_WORKERS must be at least 1")
        return value

    @property
    def allowed_webhook_hosts(self) -> frozenset[str]:
        hosts = (host.strip().lower().rstrip(".") for host in self.webhook_allowed_hosts.split(","))
        return frozenset(host for host in hosts if host)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [entry.strip() for entry in self.trusted_proxies.split(",") if entry.strip()]

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'onsite-ballot.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def secret(self) -> str:
        """The secret key: given, or generated once and kept in the data folder.

        Raises SecretFileError, with a message for the operator, when the kept file cannot be
        trusted: a server that signed sessions with an empty key would let anyone sign in.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_FILE
        if not path.exists() and not path.is_symlink():
            _write_new_secret(path)
        return _read_secret_file(path)


class SecretFileError(RuntimeError):
    """The secret key file is missing, unreadable, empty or too short; the message says what to do."""


def _read_secret_file(path: Path) -> str:
    try:
        key = path.read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(
            f"无法读取密钥文件 {path}（{type(exc).__name__}）。请检查文件权限。"
            f" · The secret key file {path} cannot be read ({type(exc).__name__}); check its permissions."
        ) from None
    if len(key) < MIN_SECRET_LENGTH or key.lower() in KNOWN_DEFAULT_SECRETS:
        raise SecretFileError(
            f"密钥文件 {path} 为空或已损坏（应至少 {MIN_SECRET_LENGTH} 个字符），服务拒绝启动。"
            "如有备份，请恢复该文件；否则删除它，下次启动会生成新密钥（已发出的测评码和登录会话将失效）。"
            f" · The secret key file {path} is empty or damaged (it needs at least {MIN_SECRET_LENGTH}"
            " characters), so the service will not start. Restore it from a backup; or delete it to have a new"
            " one made at the next start (codes already printed and open sessions then stop working)."
        )
    return key


def _write_new_secret(path: Path) -> None:
    """Write a new key so that the file is either absent or whole: never empty, never half-written.

    The key goes to a temporary file (mode 0600), is flushed to disk, and is then linked to its
    name; a link fails if the name exists, so two processes starting together keep one key.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SecretFileError(f"无法创建数据目录 {path.parent} · cannot create {path.parent}: {exc.strerror}") from None
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(48).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the key
            os.link(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise SecretFileError(
            f"无法写入密钥文件 {path}：{exc.strerror}（磁盘已满？）。腾出空间后再启动。"
            f" · Cannot write the secret key file {path}: {exc.strerror} (is the disk full?). Free some space"
            " and start again."
        ) from None
    finally:
        temporary.unlink(missing_ok=True)


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
