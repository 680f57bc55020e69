"""The `onsite-ballot` command: serve, migrate, create-api-key."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import resource
import sys
from pathlib import Path

from pydantic import ValidationError

from app import backup, store
from app.db import create_database
from app.errors import DomainError
from app.migrate import upgrade
from app.settings import SecretFileError, Settings, get_settings


def has_accounts(settings: Settings) -> bool:
    database = create_database(settings.resolved_database_url)
    try:
        with database.session() as session:
            return store.count_users(session=session) > 0
    finally:
        database.dispose()


def prepare(settings: Settings) -> tuple[str | None, int | None]:
    """Migrate, seed reference data, and on an empty database a demo unit, meeting and API key.

    Returns the new API key (first start only) and the demo meeting's id.
    """
    settings.secret()  # generated and kept in the data folder on first start
    database = create_database(settings.resolved_database_url)
    try:
        upgrade(database.write, secret=settings.secret())
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


KEEP_ALIVE_SECONDS = 75
# File descriptors a worker keeps for other things than connections: the database pool, its files,
# the listening socket, logs.
FILES_KEPT = 100


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; every connection costs one. Many
    systems start services at 1,024, which a room of phones and a few idle sockets can use up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard


def serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        with backup.serving(settings.data_dir):
            return _serve(settings, args.workers)
    except backup.RestoreInProgress as error:
        print(error, file=sys.stderr)
        return 2


def _serve(settings: Settings, workers: int) -> int:
    from app import serving

    key, meeting_id = prepare(settings)
    base = f"http://{settings.host}:{settings.port}"
    files_before, files = raise_open_file_limit()
    cap = max(1, min(settings.max_connections, files - FILES_KEPT))
    print("onsite-ballot 已启动 · is starting")
    print(f"  数据库 database:      {_safe_url(settings.resolved_database_url)}")
    print(f"  接口文档 API docs:    {base}/docs")
    print(f"  管理后台 console:     {base}/login")
    print(f"  健康检查 health:      {base}/healthz")
    if files != files_before:
        print(f"  打开文件数上限 open-file limit: {files_before} → {files}")
    print(f"  每个进程最多连接 connections per worker: {cap}（请求头须在 {settings.request_head_seconds:g} 秒内到达"
          f" · request heads within {settings.request_head_seconds:g} s）")
    if meeting_id is not None:
        print(f"  演示评议会 demo meeting: id {meeting_id} ({base}/api/v1/meetings/{meeting_id})")
    if key is not None:
        print()
        print("  首次启动，已生成管理员 API 密钥（只显示这一次，请妥善保存）:")
        print("  First start: an admin API key was created. It is shown this once; keep it safe:")
        print(f"    {key}")
        print(f'  curl -H "Authorization: Bearer {key}" {base}/api/v1/units')
    if not has_accounts(settings):
        print()
        print("  还没有管理员账号。另开一个终端，在本目录运行：")
        print("  No administrator yet. In another terminal, in this folder, run:")
        print("    .venv/bin/onsite-ballot create-admin admin")
    print(flush=True)
    # Each worker builds its settings from the environment: tell it how many share the work.
    os.environ["ONSITE_BALLOT_WORKERS"] = str(workers)
    return serving.serve(
        "app.main:app_from_env",
        host=settings.host,
        port=settings.port,
        workers=workers,
        limits=serving.Limits(head_seconds=settings.request_head_seconds, max_connections=cap),
        access_log=False,
        # X-Forwarded-For is read by the app, and only from ONSITE_BALLOT_TRUSTED_PROXIES; uvicorn's
        # own reading trusts any client on 127.0.0.1, so a local client could pose as anyone.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        # Phones on a weak meeting-room signal reuse their connection across the ~2 minutes of
        # scoring; uvicorn's 5 s default closes it under them and a submit can hit the closed socket.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def migrate(_: argparse.Namespace) -> int:
    settings = get_settings()
    database = create_database(settings.resolved_database_url)
    upgrade(database.write, secret=settings.secret())
    with database.session() as session:
        store.seed_reference(session=session)
    database.dispose()
    print("数据库已是最新结构 · database is at the latest migration")
    return 0


def create_api_key(args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_only = create_database(settings.resolved_database_url)
    upgrade(prepare_only.write, secret=settings.secret())
    with prepare_only.session() as session:
        store.seed_reference(session=session)
        key = store.create_api_key(session=session, name=args.name, scopes=args.scopes)
    prepare_only.dispose()
    print(key)
    print(f"已创建 API 密钥 “{args.name}”（只显示这一次）· API key created; shown this once", file=sys.stderr)
    return 0


class NoDatabase(RuntimeError):
    """The command needs the service's database, and there is none where the settings point."""


def existing_database(settings: Settings) -> None:
    """Refuse to work on a SQLite file that is not there: run from another folder, a command
    would otherwise make a new, empty database beside the real one and report success."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return
    path = Path(backup.sqlite_path(url)).resolve()
    if not path.exists():
        raise NoDatabase(
            f"找不到数据库 {path}。请在运行服务的目录中执行本命令（或设置 ONSITE_BALLOT_DATA_DIR /"
            " ONSITE_BALLOT_DATABASE_URL）；全新安装请先运行 make run 或 onsite-ballot migrate。"
            f"\nThere is no database at {path}. Run this command in the folder the service runs in (or set"
            " ONSITE_BALLOT_DATA_DIR / ONSITE_BALLOT_DATABASE_URL); on a new installation run make run or"
            " onsite-ballot migrate first."
        )


def create_admin(args: argparse.Namespace) -> int:
    """The first administrator; after that, administrators create accounts in the console."""
    if sys.stdin.isatty():
        password = getpass.getpass("密码 password: ")
        if getpass.getpass("再次输入 again: ") != password:
            print("两次输入的密码不一致 · the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    settings = get_settings()
    database = create_database(settings.resolved_database_url)
    try:
        upgrade(database.write, secret=settings.secret())
        with database.session() as session:
            store.seed_reference(session=session)
            user = store.create_user(
                session=session, actor="system:cli", username=args.username,
                display_name=args.name or args.username, password=password, role="admin",
            )
    except DomainError as error:
        print(error.message("zh"), file=sys.stderr)
        return 2
    finally:
        database.dispose()
    login = f"{settings.base_url.rstrip('/')}/login"
    print(f"已创建管理员 {user.username}，请在 {login} 登录 · admin created; sign in at {login}")
    return 0


def recount_file(args: argparse.Namespace) -> int:
    """Recompute a meeting's result from its audit export alone: 0 same, 1 different, 2 refused."""
    from app import recount

    try:
        file = recount.parse_audit(Path(args.file).read_bytes())
        if args.digest and args.digest.strip().lower() != file.published.digest:
            print(
                f"文件中的摘要 {file.published.digest} 与您提供的公布摘要 {args.digest.strip()} 不符\n"
                "The file's digest differs from the published digest you gave",
                file=sys.stderr,
            )
            return 2
        outcome = recount.recount(file)
    except OSError as exc:
        print(f"无法读取文件 · cannot read the file: {exc.strerror}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"{exc.message('zh')}\n{exc.message('en')}", file=sys.stderr)
        return 2
    meeting, figures = file.meeting, outcome.figures
    print(f"评议会 meeting {meeting.id} · {meeting.unit_code} {meeting.unit_name} · {meeting.date}"
          f" · 结果第 {file.published.version} 版 result version {file.published.version}")
    print(f"测评票 ballots: {len(file.ballots)}; 摘要一致 digest matches: {outcome.digest}")
    if figures.score is not None and figures.component is not None:
        print(f"得分 score {figures.score.rounded} (exact {figures.score.exact}); "
              f"现场测评折算分 component {figures.component.rounded} (exact {figures.component.exact})")
    else:
        print(f"无得分 no score: {figures.status}")
    if outcome.matches:
        print("重新计算的结果与公布的结果完全一致 · the recount reproduces the published result exactly")
        return 0
    print("重新计算的结果与公布的结果不同 · the recount differs from the published result:", file=sys.stderr)
    for difference in outcome.differences:
        print(f"  {difference}", file=sys.stderr)
    return 1


def run_backup(args: argparse.Namespace) -> int:
    url = get_settings().resolved_database_url
    if not url.startswith("sqlite"):
        print(backup.pg_dump_command(url, args.path))
        print("PostgreSQL: 请运行上面这一行（服务运行时也可）· run the line above (safe while the service runs)",
              file=sys.stderr)
        return 2
    try:
        size = backup.backup_sqlite(backup.sqlite_path(url), args.path)
    except backup.BackupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"已备份 · backed up: {args.path} ({size} bytes)")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    url = get_settings().resolved_database_url
    if not url.startswith("sqlite"):
        print(backup.pg_restore_command(url, args.path))
        print("PostgreSQL: 先停止服务，再运行上面这一行 · stop the service, then run the line above", file=sys.stderr)
        return 2
    try:
        with backup.restoring(get_settings().data_dir):
            kept = backup.restore_sqlite(args.path, backup.sqlite_path(url))
    except backup.BackupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"已恢复 · restored from {args.path}")
    if kept is not None:
        print(f"恢复前的数据库已另存 · the database before the restore was kept as {kept}")
    return 0


def verify(args: argparse.Namespace) -> int:
    """Recompute a closed meeting's result and ballot-set digest from the database; 0 when they match."""
    settings = get_settings()
    database = create_database(settings.resolved_database_url)
    try:
        with database.session() as session:
            check = store.verify_meeting(session=session, meeting_id=args.meeting_id, k=settings.k_anonymity)
    except DomainError as error:
        print(error.message("zh"), file=sys.stderr)
        return 2
    finally:
        database.dispose()
    print(f"评议会 {check.meeting_id}，结果第 {check.version} 版 · meeting {check.meeting_id}, result v{check.version}")
    print(f"  冻结时摘要 stored digest:   {check.stored_digest}")
    print(f"  重新计算摘要 recomputed:    {check.computed_digest}")
    if check.ok:
        print("一致：票据与结果自结束后未被改动 · MATCH: ballots and result unchanged since close")
        return 0
    if not check.digest_matches:
        print("不一致：票据与结束时不同 · MISMATCH: the ballots differ from those frozen at close")
    if not check.figures_match:
        stored, computed = check.stored.model_dump(mode="json"), check.computed.model_dump(mode="json")
        changed = sorted(key for key in stored if stored[key] != computed.get(key))
        print(f"不一致：重新计算的结果不同（{', '.join(changed)}）· MISMATCH: recomputed figures differ")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onsite-ballot", description="匿名现场测评 · anonymous on-site ballots")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="migrate, seed and start the server")
    p.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL only for more than 1)")
    p.set_defaults(func=serve)
    p = commands.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=migrate)
    p = commands.add_parser("create-admin", help="create an administrator (password from the terminal or stdin)")
    p.add_argument("username")
    p.add_argument("--name", default="", help="the name shown in the console")
    p.set_defaults(func=create_admin)
    p = commands.add_parser("backup", help="SQLite: copy the database to PATH while the service runs;"
                            " PostgreSQL: print the pg_dump line (exit status 2)")
    p.add_argument("path", type=Path)
    p.set_defaults(func=run_backup)
    p = commands.add_parser("restore", help="SQLite: replace the database with the backup at PATH (stop the"
                            " service first); PostgreSQL: print the pg_restore line (exit status 2)")
    p.add_argument("path", type=Path)
    p.set_defaults(func=run_restore)
    p = commands.add_parser("verify", help="recompute a closed meeting's result and digest; exit 1 on mismatch")
    p.add_argument("meeting_id", type=int)
    p.set_defaults(func=verify)
    p = commands.add_parser("create-api-key", help="create an API key and print it once")
    p.add_argument("name")
    p.add_argument("--scopes", default="admin", help="space-separated: admin, export")
    p.set_defaults(func=create_api_key)
    p = commands.add_parser("recount", help="recompute a result from an audit export (JSON or CSV) alone")
    p.add_argument("file")
    p.add_argument("--digest", help="the published digest, as the results API or a webhook gave it")
    p.set_defaults(func=recount_file)
    args = parser.parse_args(argv)
    try:
        if args.func is create_admin:
            existing_database(get_settings())
        if args.func is not recount_file:
            # Every command but recount works on the service's data: refuse a secret that cannot be
            # trusted before anything is read or written (a recount needs only its file).
            get_settings().secret()
        return int(args.func(args))
    except (SecretFileError, NoDatabase) as error:
        print(error, file=sys.stderr)
        return 2
    except ValidationError as error:  # a setting from the environment that cannot be used
        print("设置有误，服务拒绝启动 · the settings are wrong, so the service will not start:", file=sys.stderr)
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            print(f"  {where}: {problem['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
