"""The first second of a burst, against a cold service (`make bench` runs it after bench.run).

`bench.run` measures its open loop after the closed loop has warmed everything: it cannot see what
the first ballots of a morning pay for. Here each run starts a fresh service (`onsite-ballot serve`,
a new data folder), opens M meetings and mints their codes through the API, and at once sends N
ballots at R per second (Poisson) while D dashboards poll the tally once a second: latency runs from
each ballot's scheduled arrival (bench.client.open_loop), on an independent raw HTTP/1.1 client.
The same load then goes to the ceiling app (bench/ceiling_app.py: the same stack, storing nothing),
cold as well, in the same run: on a shared machine only that comparison means something.

    .venv/bin/python -m bench.cold [--runs 3] [--backend sqlite|postgresql] ...
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import client
from bench.client import Stats
from bench.run import (
    READ_OK,
    SUBMIT_OK,
    TARGET_P99_MS,
    arun,
    open_loop_phase,
    say,
    slow_by_second,
    steal_seconds,
    submits,
)
from bench.service import (
    Api,
    ceiling,
    create_api_key,
    free_port,
    pg_available,
    recreate_pg_database,
    running,
    service,
    service_env,
)

PG_DATABASE = "bench_cold"
WORKERS = {"sqlite": 1, "postgresql": 2}
FIRST_SECONDS = 2  # "the first second of a burst": the answers that ended in seconds 0 and 1


@dataclass
class Run:
    submits: Stats
    polls: Stats
    steal: float
    due: list[float]  # each answer's scheduled time, seconds from the start

    def first(self) -> list[float]:
        """Latencies of the ballots scheduled in the first FIRST_SECONDS of the run."""
        return [lat for lat, due in zip(self.submits.latencies, self.due, strict=True) if due < FIRST_SECONDS]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * int(p) // 100) - 1)] if ordered else float("nan")


def one_run(backend: str, args: argparse.Namespace, work: Path, seed: int) -> tuple[Run, Run]:
    rng = random.Random(seed)
    workers = WORKERS[backend]
    url = recreate_pg_database(PG_DATABASE) if backend == "postgresql" else ""
    env = service_env(work / f"{backend}-{seed}", free_port(), url)
    key = create_api_key(env, "bench-cold")
    offsets, t = [], 0.0
    for _ in range(args.ballots):
        offsets.append(t)
        t += rng.expovariate(args.rate)
    duration = args.ballots / args.rate
    with running(service(env, workers, work / f"{backend}-{seed}.log")) as server:
        api = Api(server.base, key)
        meetings = []
        for n in range(args.meetings):
            api.unit(f"COLD-{n:02d}")
            meetings.append(api.open_meeting(f"COLD-{n:02d}", "冷启动 cold start", args.ballots // args.meetings))
        bodies: list[bytes] = []
        for meeting_id in meetings:  # minted just before the burst, as an organizer would
            bodies.extend(submits(rng, api.mint(meeting_id, args.ballots // args.meetings)))
        rng.shuffle(bodies)
        auth = {"Authorization": f"Bearer {key}"}
        polls = [client.get(f"/api/v1/meetings/{m}/tally", headers=auth) for m in meetings]
        api.http.close()
        stolen = steal_seconds()
        submitted, polled, _ = arun(open_loop_phase(server.port, bodies, offsets, polls, duration, args.dashboards))
        service_run = Run(submitted, polled, steal_seconds() - stolen, _due(submitted, offsets))
    with running(ceiling(workers, free_port(), work / f"ceiling-{seed}.log")) as top:
        stolen = steal_seconds()
        healthz = [client.get("/healthz")]
        submitted, polled, _ = arun(open_loop_phase(top.port, bodies, offsets, healthz, duration, args.dashboards))
        ceiling_run = Run(submitted, polled, steal_seconds() - stolen, _due(submitted, offsets))
    return service_run, ceiling_run


def _due(stats: Stats, offsets: list[float]) -> list[float]:
    # open_loop records answers as they come; their scheduled times, in the same order, are
    # recovered from when each ended minus its latency.
    if not stats.finished:
        return []
    start = min(f - lat for f, lat in zip(stats.finished, stats.latencies, strict=True))
    return [f - lat - start for f, lat in zip(stats.finished, stats.latencies, strict=True)]


def line(name: str, run: Run) -> str:
    s = run.submits
    first = run.first()
    return (f"  {name:8} p50 {s.percentile(50) * 1000:6.1f} ms  p99 {s.percentile(99) * 1000:6.1f} ms"
            f"  max {max(s.latencies, default=0) * 1000:6.1f} ms  first {FIRST_SECONDS} s: p99"
            f" {percentile(first, 99) * 1000:6.1f} ms of {len(first)}  errors {s.errors(SUBMIT_OK)}"
            f"  polls p99 {run.polls.percentile(99) * 1000:5.1f} ms ({run.polls.errors(READ_OK)} errors)"
            f"  steal {run.steal:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cold", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3, help="fresh services, one after the other")
    parser.add_argument("--meetings", type=int, default=10)
    parser.add_argument("--ballots", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--dashboards", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the data folders and server logs")
    args = parser.parse_args(argv)
    if args.backend == "postgresql" and not pg_available():
        parser.error("PostgreSQL does not answer on 127.0.0.1:5432")
    say(f"cold open loop · {args.backend} · {args.meetings} fresh meetings, codes minted just before,"
        f" {args.ballots} ballots at {args.rate:g}/s (Poisson), {args.dashboards} dashboards")
    work = Path(tempfile.mkdtemp(prefix="onsite-cold-"))
    p99s: list[float] = []
    ceilings: list[float] = []
    for n in range(args.runs):
        service_run, ceiling_run = one_run(args.backend, args, work, 20261203 + n)
        say(f"run {n + 1}:\n{line('service', service_run)}\n{line('ceiling', ceiling_run)}\n"
            f"  service submits over 100 ms, by second: {slow_by_second(service_run.submits, 0.1) or 'none'}")
        p99s.append(service_run.submits.percentile(99) * 1000)
        ceilings.append(ceiling_run.submits.percentile(99) * 1000)
    say(f"service p99 over {args.runs} runs: {min(p99s):.1f}–{max(p99s):.1f} ms (median"
        f" {statistics.median(p99s):.1f}); ceiling {min(ceilings):.1f}–{max(ceilings):.1f} ms;"
        f" target under {TARGET_P99_MS:g} ms: {'met' if max(p99s) < TARGET_P99_MS else 'MISSED'}")
    if args.keep:
        say(f"kept {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
