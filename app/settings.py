"""Settings from the environment (prefix ONSITE_BALLOT_), built by a factory, never at import."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator
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
SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONSITE_BALLOT_", extra="ignore")

    data_dir: Path = Path("data")
    # Empty means the embedded SQLite file data_dir/onsite-ballot.db.
    database_url: str = ""
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    k_anonymity: int = 5
    environment: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    # The largest request body accepted; a 19-point ballot with a long comment is under 8 KiB.
    max_body_bytes: int = 64 * 1024
    # How long a request body may take to arrive: a phone on a weak signal sends 8 KiB in well under
    # this; a client trickling bytes to hold connections open does not.
    max_body_seconds: float = 15.0
    # Webhooks: the first retry waits webhook_backoff_seconds, each next one twice as long up to
    # webhook_backoff_max_seconds; a delivery is retried for webhook_retry_hours before it is
    # given up (the issue asks for at least 24 hours). Tests set these to fractions of a second.
    webhook_worker: bool = True
    webhook_poll_seconds: float = 2.0
    webhook_timeout_seconds: float = 10.0
    webhook_backoff_seconds: float = 30.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_retry_hours: float = 48.0

    @field_validator("secret_key")
    @classmethod
    def _refuse_known_defaults(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in KNOWN_DEFAULT_SECRETS or len(raw) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"ONSITE_BALLOT_SECRET_KEY is a known default or shorter than {MIN_SECRET_LENGTH}"
                " characters; leave it unset to have one generated in the data folder"
            )
        return value

    @field_validator("k_anonymity")
    @classmethod
    def _k_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("ONSITE_BALLOT_K_ANONYMITY must be at least 1")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'onsite-ballot.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def secret(self) -> str:
        """The secret key: given, or generated once and kept in the data folder."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_FILE
        if path.exists():
            return path.read_text("ascii").strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key, "ascii")
        return key


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
