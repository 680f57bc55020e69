"""`restore` while the service runs is refused with a plain message, and a server does not start
during a restore (issue #13, point 3): a restore under a running server once dropped 100
acknowledged ballots and let their codes vote again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from app import backup
from bench.service import BIN, ROOT, Api, create_api_key, free_port, running, service, service_env
from tests.conftest import ALL_A

pytestmark = pytest.mark.slow

BALLOTS = 100


def command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "onsite-ballot"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=60)


def test_restore_is_refused_while_a_server_holds_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = service_env(data, free_port())
    key = create_api_key(env, "restore-test")
    saved = tmp_path / "before-the-meeting.db"
    server = service(env, 1, tmp_path / "server.log")
    with running(server):
        api = Api(server.base, key)
        api.unit("R1")
        meeting_id = api.open_meeting("R1", "恢复测试", BALLOTS)
        codes = api.mint(meeting_id, BALLOTS)
        assert command(env, "backup", str(saved)).returncode == 0
        for code in codes:
            assert api.http.post("/api/v1/ballots", json={"token": code, "answers": ALL_A}).status_code == 201

        refused = command(env, "restore", str(saved))
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert refused.stderr == (
            f"服务正在使用数据目录 {data} 中的数据库，不能恢复。请先停止服务（onsite-ballot serve），再运行 restore。\n"
            f"The service is running on the database in {data}: stop it (onsite-ballot serve) before you restore.\n"
        )
        # Nothing changed: every code is still spent, every ballot still counted.
        assert api.http.post("/api/v1/ballots", json={"token": codes[0], "answers": ALL_A}).status_code == 200
        assert api.tally(meeting_id)["ballots_counted"] == BALLOTS
        api.http.close()
    assert list(data.glob("*.before-restore-*")) == []

    # Stopped, the same restore goes through, and brings back the meeting before its ballots.
    restored = command(env, "restore", str(saved))
    assert restored.returncode == 0, restored.stderr
    with running(server):
        api = Api(server.base, key)
        assert api.tally(meeting_id)["ballots_counted"] == 0
        api.http.close()


def test_a_server_does_not_start_while_a_restore_holds_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = service_env(data, free_port())
    create_api_key(env, "restore-test")  # migrates the database
    server = service(env, 1, tmp_path / "server.log")
    with backup.restoring(data), pytest.raises(RuntimeError, match="exited with 2"):
        server.start()
    assert (
        f"数据目录 {data} 中的数据库正在恢复，服务未启动；恢复完成后再启动。"
        f" · A restore is replacing the database in {data}; start the service once it is done."
    ) in (tmp_path / "server.log").read_text("utf-8")
    with running(server):
        assert httpx.get(f"{server.base}/readyz", timeout=5).status_code == 200
