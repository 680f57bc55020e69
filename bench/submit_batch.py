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
from app.schemas import MeetingCreate
from app.sealing import ServerKeys
from app.writer import MIX_AT_ONCE
from bench.run import machine_cpu_seconds

POINTS = [f"p{i:02d}" for i in range(1, 20)]
# Any secret: the keys that seal and hash are derived from it as the service derives them.
KEYS = ServerKeys.from_secret("submit-batch-benchmark-secret-0123456789")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.submit_batch", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ballots", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64, help="ballots per transaction, as the writer gathers them")
    parser.add_argument("--k", type=int, default=5, help="K: a group is mixed once 2K wait sealed")
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
        meeting_id = meeting.id
        store.open_meeting(session=session, actor="bench", meeting_id=meeting.id)
        codes: list[str] = []
        while len(codes) < args.ballots:
            n = min(store.MAX_MINT, args.ballots - len(codes))
            codes += [c for c, _ in store.mint_tokens(session=session, actor="bench", meeting_id=meeting.id,
                                                       count=n, group=None, keys=KEYS)]
    submissions = [store.Submission(code=c, answers={p: rng.choice("ABCD") for p in POINTS}, comment=None)
                   for c in codes]

    spending, mixing = [0.0], [0.0]

    def run() -> None:
        # As the writer does under load: each batch spends its codes and seals its ballots in one
        # transaction; once MIX_AT_ONCE wait sealed (a quiet meeting: 2K, at most once a second), all
        # but K are mixed into the box in a transaction of their own.
        for start in range(0, len(submissions), args.batch):
            began = time.perf_counter()
            with database.writing() as conn:
                spent = store.submit_batch(conn=conn, submissions=submissions[start:start + args.batch], keys=KEYS)
            assert all(o.status == "counted" for o in spent.outcomes), spent.outcomes
            mixed = time.perf_counter()
            spending[0] += mixed - began
            if spent.sealed[meeting_id] >= max(MIX_AT_ONCE, 2 * args.k):
                with database.writing() as conn:
                    store.mix(conn=conn, meeting_id=meeting_id, keys=KEYS, k=args.k)
                mixing[0] += time.perf_counter() - mixed

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
          f" ({n / wall:.0f}/s); of the wall time {spending[0] / n * 1e6:.0f} µs/ballot spending and sealing,"
          f" {mixing[0] / n * 1e6:.0f} µs/ballot mixing")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
