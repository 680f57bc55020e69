"""Applying Alembic migrations from inside the app (make run, the CLI, the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, *, secret: str | None = None) -> None:
    """Migrate to the latest schema. ``secret``: the server's, for the one migration that needs it
    (codes kept as plain hashes before 2026-12-02 become keyed ones); without it, the settings'."""
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        config.attributes["secret"] = secret
        command.upgrade(config, "head")


def at_head(engine: Engine) -> bool:
    config = alembic_config(str(engine.url))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == heads
