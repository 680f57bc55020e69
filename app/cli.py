"""The `onsite-ballot` command: serve, migrate, create-api-key."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from app import store
from app.db import create_database
from app.migrate import upgrade
from app.settings import Settings, get_settings


def prepare(settings: Settings) -> tuple[str | None, int | None]:
    """Migrate, seed reference data, and on an empty database a demo unit, meeting and API key.

    Returns the new API key (first start only) and the demo meeting's id.
    """
    settings.secret()  # generated and kept in the data folder on first start
    database = create_database(settings.resolved_database_url)
    try:
        upgrade(database.write)
        with database.session() as session:
            store.seed_reference(session=session)
            if not store.is_empty(session=session):
                return None, None
            today = dt.date.today()
            meeting = store.seed_demo(session=session, year=today.year, date=today)
            key = None
            if store.count_api_keys(session=session) == 0:
                key = store.create_api_key(session=session, name="first-admin")
            return key, meeting.id
    finally:
        database.dispose()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    key, meeting_id = prepare(settings)
    base = f"http://{settings.host}:{settings.port}"
    print("onsite-ballot 已启动 · is starting")
    print(f"  数据库 database:      {_safe_url(settings.resolved_database_url)}")
    print(f"  接口文档 API docs:    {base}/docs")
    print(f"  健康检查 health:      {base}/healthz")
    if meeting_id is not None:
        print(f"  演示评议会 demo meeting: id {meeting_id} ({base}/api/v1/meetings/{meeting_id})")
    if key is not None:
        print()
        print("  首次启动，已生成管理员 API 密钥（只显示这一次，请妥善保存）:")
        print("  First start: an admin API key was created. It is shown this once; keep it safe:")
        print(f"    {key}")
        print(f'  curl -H "Authorization: Bearer {key}" {base}/api/v1/units')
    print(flush=True)
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def migrate(_: argparse.Namespace) -> int:
    settings = get_settings()
    database = create_database(settings.resolved_database_url)
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
    database.dispose()
    print("数据库已是最新结构 · database is at the latest migration")
    return 0


def create_api_key(args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_only = create_database(settings.resolved_database_url)
    upgrade(prepare_only.write)
    with prepare_only.session() as session:
        store.seed_reference(session=session)
        key = store.create_api_key(session=session, name=args.name, scopes=args.scopes)
    prepare_only.dispose()
    print(key)
    print(f"已创建 API 密钥 “{args.name}”（只显示这一次）· API key created; shown this once", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onsite-ballot", description="匿名现场测评 · anonymous on-site ballots")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="migrate, seed and start the server")
    p.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL only for more than 1)")
    p.set_defaults(func=serve)
    p = commands.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=migrate)
    p = commands.add_parser("create-api-key", help="create an API key and print it once")
    p.add_argument("name")
    p.add_argument("--scopes", default="admin", help="space-separated: admin, export")
    p.set_defaults(func=create_api_key)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
