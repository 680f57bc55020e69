"""The server's disk fills up during a meeting (issue #13, point 4).

The data folder is a small tmpfs mounted for the test (it needs root and a kernel that lets the
test mount one; it is skipped otherwise, with the reason). A file then takes every free byte. While
the disk is full, /readyz is not ready and every write, a ballot or minting codes, answers a plain
503 that says the server's disk is full; nothing acknowledged is lost. Once space is freed the
service takes ballots again at once, and `onsite-ballot verify` passes after the close.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.service import Api, Server, create_api_key, free_port, running, service, service_env
from tests.faults import Phones, check_box, close_and_verify

pytestmark = pytest.mark.slow

DISK_FULL = "服务器磁盘已满，本次操作没有保存。请管理员腾出磁盘空间后再试。"
BALLOTS = 120


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def send(server: Server, phones: Phones, codes: list[str]) -> dict[str, tuple[int, dict[str, str]]]:
    answers = {}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for code in codes:
            r = client.post("/api/v1/ballots", json={"token": code, "answers": phones.answers[code]})
            answers[code] = (r.status_code, r.json())
            if r.status_code in (200, 201):
                phones.acked[code] = r.status_code
                phones.ack_times.append(time.monotonic())
    return answers


def test_a_full_disk_is_not_ready_and_every_write_says_so(small_disk: Path) -> None:
    data = small_disk / "data"
    env = service_env(data, free_port())
    key = create_api_key(env, "disk-test")
    with running(service(env, 1, small_disk.parent / "server.log")) as server:
        api = Api(server.base, key)
        api.unit("DISK1")
        meeting_id = api.open_meeting("DISK1", "磁盘已满", BALLOTS)
        codes = api.mint(meeting_id, BALLOTS)
        phones = Phones.for_codes(codes)
        assert {status for status, _ in send(server, phones, codes[:40]).values()} == {201}

        filler = fill(small_disk)
        ready = httpx.get(f"{server.base}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (503, {"status": "unavailable", "reason": "disk_full"})
        minted = api.http.post(f"/api/v1/meetings/{meeting_id}/tokens", json={"count": 10})
        assert (minted.status_code, minted.json()["code"], minted.json()["detail"]) == (503, "disk_full", DISK_FULL)
        refused = send(server, phones, codes[40:80])
        assert {(status, body["code"], body["detail"]) for status, body in refused.values()} == {
            (503, "disk_full", DISK_FULL)}
        page = api.http.post(f"/api/v1/meetings/{meeting_id}/close")
        assert (page.status_code, page.json()["code"]) == (503, "disk_full")

        os.unlink(filler)
        started = time.monotonic()
        # The phones send what was refused again, and the rest.
        assert {status for status, _ in send(server, phones, codes[40:]).values()} == {201}
        assert time.monotonic() - started < 10
        assert httpx.get(f"{server.base}/readyz", timeout=10).status_code == 200

        check_box(f"sqlite:///{data / 'onsite-ballot.db'}", meeting_id, phones, env)
        close_and_verify(api, meeting_id, env, phones)
        api.http.close()
    assert len(phones.acked) == BALLOTS
