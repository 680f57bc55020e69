"""The storing cost alone: app.store.submit_batch in batches, no HTTP, on a fresh database.

A quick loop for work on the ballot hot path: seconds instead of the minutes of `make bench`.
CPU per ballot is the figure to watch on a shared machine; wall time includes the fsyncs.

    .venv/bin/python -m bench.submit_batch [--ballots 4096] [--batch 64] [--k 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import random
import secrets
import tempfile
import time
from pathlib import Path

from app import store
from app.db import create_database
from app.migrate import upgrade
from app.models import MeetingCreate
from bench.run import machine_cpu_seconds

POINTS = [f"p{i:02d}" for i in range(1, 20)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.submit_batch", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ballots", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64, help="ballots per transaction, as the writer gathers them")
    parser.add_argument("--k", type=int, default=5, help="the tally's step; a huge k leaves republishing out")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a new temporary folder")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args(argv)

    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='onsite-submit-')) / 'bench.db'}"
    database = create_database(url)
    upgrade(database.write)
    rng = random.Random(1)
    code = f"SB-{secrets.token_hex(4)}"  # a database given by URL may hold earlier runs
    with database.session() as session:
        store.seed_reference(session=session)
        store.create_unit(session=session, actor="bench", code=code, name="压测", category="party_gov")
        meeting = store.create_meeting(
            session=session, actor="bench",
            body=MeetingCreate(unit_code=code, year=2026, date=dt.date(2026, 12, 3), title="submit_batch",
                               mode="cards", attendance=args.ballots),
        )
        assert meeting.id is not None
        store.open_meeting(session=session, actor="bench", meeting_id=meeting.id)
        codes: list[str] = []
        while len(codes) < args.ballots:
            n = min(store.MAX_MINT, args.ballots - len(codes))
            codes += [c for c, _ in store.mint_tokens(session=session, actor="bench", meeting_id=meeting.id,
                                                       count=n, group=None)]
    submissions = [store.Submission(code=c, answers={p: rng.choice("ABCD") for p in POINTS}, comment=None)
                   for c in codes]

    def run() -> None:
        for start in range(0, len(submissions), args.batch):
            with database.writing() as conn:
                outcomes = store.submit_batch(conn=conn, submissions=submissions[start:start + args.batch], k=args.k)
            assert all(o.status == "counted" for o in outcomes), outcomes

    profiler = cProfile.Profile() if args.profile else None
    wall, cpu, machine = time.perf_counter(), time.process_time(), machine_cpu_seconds()
    if profiler is not None:
        profiler.enable()
    run()
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    machine = machine_cpu_seconds() - machine
    database.dispose()
    n = len(submissions)
    print(f"{url.split(':', 1)[0]}: {n} ballots in batches of {args.batch}, k={args.k}:"
          f" {wall / n * 1e6:.0f} µs/ballot wall, {cpu / n * 1e6:.0f} µs/ballot CPU here,"
          f" {machine / n * 1e6:.0f} µs/ballot CPU on the whole machine (a database server's included)"
          f" ({n / wall:.0f}/s)")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
