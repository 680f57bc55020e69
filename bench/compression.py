"""What compression costs the server, in process (no sockets): a submit and a ballot page, with the
compression middleware and without it. The submit path is left uncompressed on purpose; this shows
that the path check costs it nothing measurable, and what gzip costs a page.

    .venv/bin/python -m bench.compression [--submits 2000] [--pages 500] [--rounds 3]

Per request: the median wall time through the ASGI app (httpx's ASGI transport), one request at a
time, on a fresh SQLite database, and the process's CPU time per request (client, app and writer
in one process: the fsync of each submit weighs on the wall time, not on the CPU time). Rounds alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from app import store
from app.db import create_database
from app.main import create_app
from app.middleware import CompressExceptSubmits
from app.migrate import upgrade
from app.settings import Settings

ANSWERS = {f"p{i:02d}": "ABCD"[i % 4] for i in range(1, 20)}


def build(folder: Path, *, compress: bool) -> tuple[FastAPI, list[str], list[str]]:
    url = f"sqlite:///{folder / 'bench.db'}"
    database = create_database(url)
    upgrade(database.write)
    with database.session() as session:
        store.seed_reference(session=session)
        meeting = store.seed_demo(session=session, year=2026, date=dt.date(2026, 12, 3))
        store.open_meeting(session=session, actor="bench", meeting_id=meeting.id)  # type: ignore[arg-type]
        codes = [code for _ in range(3) for code, _ in store.mint_tokens(
            session=session, actor="bench", meeting_id=meeting.id, count=1000, group=None)]  # type: ignore[arg-type]
    database.dispose()
    settings = Settings(data_dir=folder, database_url=url, secret_key="bench-secret-key-long-enough-0123456789",  # type: ignore[arg-type]
                        environment="test", webhook_worker=False)
    app = create_app(settings)
    if not compress:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not CompressExceptSubmits]
    return app, codes[:2000], codes[2000:]


async def measure(app: FastAPI, submits: list[str], pages: list[str]) -> tuple[float, float, float, float, int]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Accept-Encoding": "gzip"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        submit_times, page_times, size = [], [], 0
        cpu = time.process_time()
        for code in submits:
            started = time.perf_counter()
            r = await client.post("/api/v1/ballots", json={"token": code, "answers": ANSWERS}, headers=headers)
            submit_times.append(time.perf_counter() - started)
            assert r.status_code == 201, r.text
        submit_cpu = (time.process_time() - cpu) / len(submits)
        cpu = time.process_time()
        for code in pages:
            started = time.perf_counter()
            r = await client.get(f"/b/{code}", headers=headers)
            page_times.append(time.perf_counter() - started)
            size = r.num_bytes_downloaded
        page_cpu = (time.process_time() - cpu) / len(pages)
    return (statistics.median(submit_times) * 1000, submit_cpu * 1000, statistics.median(page_times) * 1000,
            page_cpu * 1000, size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.compression", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    for round_ in range(1, args.rounds + 1):
        for compress in (True, False):
            with tempfile.TemporaryDirectory(prefix="onsite-compress-") as folder:
                app, codes, rest = build(Path(folder), compress=compress)
                submit_ms, submit_cpu, page_ms, page_cpu, size = asyncio.run(
                    measure(app, codes[: args.submits], rest[: args.pages]))
            label = "compressed  " if compress else "uncompressed"
            print(f"round {round_} {label}: submit {submit_ms:.2f} ms median, {submit_cpu:.3f} ms CPU;"
                  f" ballot page {page_ms:.2f} ms median, {page_cpu:.3f} ms CPU, {size} bytes", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
