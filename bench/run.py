"""`make bench`: the ballot service under load, against its own ceiling, on SQLite and PostgreSQL.

For each backend it starts `onsite-ballot serve` as a user would (SQLite: one worker;
PostgreSQL: two workers and a dedicated database `bench`), prepares meetings through the API,
and measures, over loopback only:

1. closed loop: C connections submit a fixed number of default-template ballots to one meeting,
   each sending the next as soon as the last is answered; the same bodies go to the ceiling
   (bench/ceiling_app.py: same stack, nothing stored) under the same worker count; ratio.
   The two take turns in rounds (ceiling first, then service first, ...), each round on fresh
   connections, and the ratio is that of their throughputs over all rounds.
2. open loop: M meetings open at once, ballots arriving at R per second (Poisson) for D seconds,
   while dashboards poll each meeting's tally once a second (harsher than the push that real
   dashboards use; bench/push_latency.py measures the push).
3. reads: the tally and the result of a meeting with 10 ballots and of the closed-loop meeting
   (10,000 ballots by default), interleaved on one connection; ratio of the means.

    .venv/bin/python -m bench.run [--backend sqlite|postgresql|all] [--ballots 10000] ...
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from app.tokens import mint_code
from bench import client
from bench.client import Pool, Stats
from bench.service import (
    Api,
    Server,
    ceiling,
    create_api_key,
    free_port,
    pg_available,
    recreate_pg_database,
    running,
    service,
    service_env,
)

GRADES = "ABCD"
POINTS = [f"p{i:02d}" for i in range(1, 20)]
SUBMIT_OK = (200, 201)
READ_OK = (200,)
BALLOTS_PATH = "/api/v1/ballots"
# Enough to warm every worker's imports, caches and connection pool before measuring.
WARMUP_REQUESTS = 600
SEED = 20261203
PG_DATABASE = "bench"
WORKERS = {"sqlite": 1, "postgresql": 2}
# The targets on a 2-core machine.
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET_READ_RATIO = 1.5


def ballot_body(rng: random.Random, code: str) -> dict[str, object]:
    return {"token": code, "answers": {p: rng.choice(GRADES) for p in POINTS}, "comment": None}


def submits(rng: random.Random, codes: Sequence[str]) -> list[bytes]:
    return [client.post_json(BALLOTS_PATH, ballot_body(rng, code)) for code in codes]


@dataclass
class Phase:
    stats: Stats
    server_cpu: float  # seconds of the server's process tree
    client_cpu: float  # seconds of this process
    machine_cpu: float  # seconds of every process on the machine (the database server's included)
    busiest: float = 0.0  # the busiest process's share of the server's CPU: how evenly workers were loaded
    steal: float = 0.0  # seconds the host took from this virtual machine

    def line(self, ok: Sequence[int]) -> str:
        n = max(1, len(self.stats.latencies))
        return (
            f"{self.stats.summary(ok)}\n"
            f"         server CPU {self.server_cpu:5.2f} s ({self.server_cpu / n * 1e6:5.0f} µs/request),"
            f" client CPU {self.client_cpu:5.2f} s, whole machine {self.machine_cpu:5.2f} s"
            f" ({self.machine_cpu / n * 1e6:5.0f} µs/request) over {self.stats.elapsed:5.2f} s wall"
            f"{f'; busiest process {self.busiest:.0%} of the server CPU' if self.busiest else ''}"
            f"{f'; the host took {self.steal:.2f} s (steal)' if self.steal >= 0.05 else ''}"
        )


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far, from /proc/stat: user, nice, system, irq, softirq."""
    user, nice, system, _idle, _iowait, irq, softirq = _proc_stat()[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def steal_seconds() -> float:
    """CPU time the virtual machine's host took from us so far: a noisy neighbour, not our work."""
    return _proc_stat()[7] / os.sysconf("SC_CLK_TCK")


def _proc_stat() -> list[int]:
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


T = TypeVar("T")


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is there (uvicorn[standard] brings it): a cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def slow_by_second(stats: Stats, threshold: float) -> dict[int, int]:
    """How many answers took longer than the threshold, by the second of the phase they ended in:
    one stall shows as one crowded second, a slow server as many."""
    if not stats.finished:
        return {}
    start = min(f - lat for f, lat in zip(stats.finished, stats.latencies, strict=True))
    slow: dict[int, int] = {}
    for finished, latency in zip(stats.finished, stats.latencies, strict=True):
        if latency > threshold:
            second = int(finished - start)
            slow[second] = slow.get(second, 0) + 1
    return dict(sorted(slow.items()))


def combined(phases: Sequence[Phase]) -> Phase:
    """Rounds of one kind as one phase: answers, times and CPU added up."""
    stats = Stats()
    for phase in phases:
        stats.latencies += phase.stats.latencies
        stats.failures += phase.stats.failures
        stats.elapsed += phase.stats.elapsed
        for status, n in phase.stats.statuses.items():
            stats.statuses[status] = stats.statuses.get(status, 0) + n
    return Phase(stats, sum(p.server_cpu for p in phases), sum(p.client_cpu for p in phases),
                 sum(p.machine_cpu for p in phases), steal=sum(p.steal for p in phases))


def measured(server: Server, phase: Callable[[], Awaitable[Stats]]) -> Phase:
    """Run an async phase, counting the CPU it cost the server and this client."""
    by_process, cpu_client, cpu_machine = server.cpu_by_process(), time.process_time(), machine_cpu_seconds()
    stolen = steal_seconds()

    async def go() -> Stats:
        return await phase()

    stats = arun(go())
    spent = {pid: cpu - by_process.get(pid, 0.0) for pid, cpu in server.cpu_by_process().items()}
    total = sum(spent.values())
    busiest = max(spent.values()) / total if len(spent) > 1 and total else 0.0
    return Phase(stats, total, time.process_time() - cpu_client, machine_cpu_seconds() - cpu_machine, busiest,
                 steal_seconds() - stolen)


@dataclass
class Reads:
    small: Stats = field(default_factory=Stats)
    big: Stats = field(default_factory=Stats)

    def mean(self, which: Stats) -> float:
        return sum(which.latencies) / len(which.latencies)

    @property
    def ratio(self) -> float:
        return self.mean(self.big) / self.mean(self.small)


async def interleaved_reads(port: int, small: bytes, big: bytes, rounds: int) -> Reads:
    """Small and big alternate on one connection, so machine noise falls on both alike."""
    reads = Reads()
    conn = await client.Connection.open("127.0.0.1", port)
    try:
        for raw in (small, big) * 20:  # warm caches of both before counting
            await conn.request(raw)
        for _ in range(rounds):
            for raw, stats in ((small, reads.small), (big, reads.big)):
                started = time.perf_counter()
                status, _ = await conn.request(raw)
                stats.record(status, time.perf_counter() - started)
    finally:
        conn.close()
    reads.small.elapsed = sum(reads.small.latencies)
    reads.big.elapsed = sum(reads.big.latencies)
    return reads


async def open_loop_phase(
    port: int, ballots: list[bytes], offsets: list[float], polls: list[bytes], duration: float, dashboards: int
) -> tuple[Stats, Stats, int]:
    submit_stats, poll_stats = Stats(), Stats()
    pool = Pool("127.0.0.1", port)

    async def dashboard(index: int) -> None:
        # One keep-alive connection per dashboard, polling once a second, staggered.
        conn = await client.Connection.open("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        start = loop.time() + index / dashboards
        try:
            tick = 0
            while True:
                due = start + tick
                if due - (start - index / dashboards) > duration:
                    return
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tick += 1
                try:
                    status, _ = await conn.request(polls[index % len(polls)])
                except client.FAILURES:
                    poll_stats.failures += 1
                    conn.close()
                    conn = await client.Connection.open("127.0.0.1", port)
                    continue
                poll_stats.record(status, loop.time() - due)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(
        client.open_loop(pool, ballots, offsets, submit_stats),
        *(dashboard(i) for i in range(dashboards)),
    )
    poll_stats.elapsed = time.perf_counter() - started
    opened = pool.opened
    pool.close()
    return submit_stats, poll_stats, opened


@dataclass
class Report:
    backend: str
    workers: int
    ceiling: Phase | None = None
    submit: Phase | None = None
    open_submit: Stats | None = None
    open_polls: Stats | None = None
    open_connections: int = 0
    tally_reads: Reads | None = None
    result_reads: Reads | None = None
    big_count: int = 0
    small_count: int = 0
    close_big_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        assert self.ceiling is not None and self.submit is not None
        return self.submit.stats.throughput / self.ceiling.stats.throughput


def bench_backend(backend: str, args: argparse.Namespace, work: Path) -> Report:
    workers = WORKERS[backend]
    report = Report(backend, workers)
    rng = random.Random(SEED)
    data_dir = work / backend
    database_url = recreate_pg_database(PG_DATABASE) if backend == "postgresql" else ""
    port = free_port()
    env = service_env(data_dir, port, database_url)
    env.update({f"ONSITE_BALLOT_{name.upper()}": value for name, value in args.setting})
    key = create_api_key(env, "bench")
    say(f"\n== {backend}: {workers} worker(s), data in {data_dir if backend == 'sqlite' else PG_DATABASE}")

    # Ceiling and service run side by side and take turns, in rounds with fresh connections: on a
    # shared machine a slow patch then falls on both, and so does the luck of how the connections
    # happen to spread over the workers (uvicorn's workers share one listening socket).
    ceiling_server = ceiling(workers, free_port(), work / f"{backend}-ceiling.log")
    with running(ceiling_server), running(service(env, workers, work / f"{backend}-service.log")) as server:
        api = Api(server.base, key)
        api.unit("BENCH-C")
        warm = api.open_meeting("BENCH-C", "预热 warm-up", WARMUP_REQUESTS)
        big = api.open_meeting("BENCH-C", "压测 closed loop", args.ballots)
        small = api.open_meeting("BENCH-C", "十票 ten ballots", args.small)
        for n in range(args.meetings):
            api.unit(f"BENCH-{n:02d}")
        open_ids = [api.open_meeting(f"BENCH-{n:02d}", "开放负载 open loop", args.open_ballots) for n in
                    range(args.meetings)]

        ceiling_bodies = submits(rng, [mint_code() for _ in range(WARMUP_REQUESTS + args.ballots)])
        warm_bodies = submits(rng, api.mint(warm, WARMUP_REQUESTS))
        big_bodies = submits(rng, api.mint(big, args.ballots))
        arun(client.closed_loop("127.0.0.1", ceiling_server.port, ceiling_bodies[:WARMUP_REQUESTS],
                                args.connections))
        arun(client.closed_loop("127.0.0.1", port, warm_bodies, args.connections))
        ceiling_rounds: list[Phase] = []
        submit_rounds: list[Phase] = []
        size = -(-args.ballots // args.rounds)
        for n, start in enumerate(range(0, args.ballots, size)):
            turns = [(ceiling_server, ceiling_bodies[WARMUP_REQUESTS + start:][:size], ceiling_rounds),
                     (server, big_bodies[start:start + size], submit_rounds)]
            for target, bodies, phases in turns if n % 2 == 0 else reversed(turns):
                with profiling(server if target is server else None, args.profile, f"{backend}-submit-{n}"):
                    phases.append(measured(target, lambda t=target, b=bodies: client.closed_loop(
                        "127.0.0.1", t.port, b, args.connections)))
            c, v = ceiling_rounds[-1], submit_rounds[-1]
            spread = f" (busiest process {c.busiest:.0%} / {v.busiest:.0%} of the CPU)" if workers > 1 else ""
            say(f"  round {n + 1}: ceiling {c.stats.throughput:5.0f}/s, service {v.stats.throughput:5.0f}/s,"
                f" ratio {v.stats.throughput / c.stats.throughput:.2f}{spread}")
        report.ceiling, report.submit = combined(ceiling_rounds), combined(submit_rounds)
        say(f"ceiling  closed loop, {args.connections} connections, {len(ceiling_rounds)} rounds\n"
            f"  {report.ceiling.line(SUBMIT_OK)}")
        say(f"service  closed loop, {args.connections} connections, one meeting, {len(submit_rounds)} rounds\n"
            f"  {report.submit.line(SUBMIT_OK)}")
        say(f"ratio submit / ceiling: {report.ratio:.2f} (target >= {TARGET_RATIO})")

        # A provincial morning: ballots for M meetings interleaved at random, Poisson arrivals.
        per_meeting = args.open_ballots // args.meetings
        open_bodies: list[bytes] = []
        for meeting_id in open_ids:
            open_bodies.extend(submits(rng, api.mint(meeting_id, per_meeting)))
        rng.shuffle(open_bodies)
        offsets, t = [], 0.0
        for _ in open_bodies:
            offsets.append(t)
            t += rng.expovariate(args.rate)
        auth = {"Authorization": f"Bearer {key}"}
        polls = [client.get(f"/api/v1/meetings/{m}/tally", headers=auth) for m in open_ids]
        duration = len(open_bodies) / args.rate
        started_cpu, stolen = server.cpu_seconds(), steal_seconds()
        with profiling(server, args.profile, f"{backend}-open-loop"):
            report.open_submit, report.open_polls, report.open_connections = arun(
                open_loop_phase(port, open_bodies, offsets, polls, duration, args.dashboards))
        open_cpu, stolen = server.cpu_seconds() - started_cpu, steal_seconds() - stolen
        say(f"service  open loop, {args.meetings} meetings, {len(open_bodies)} ballots at {args.rate:g}/s"
            f" (Poisson), {args.dashboards} dashboards polling the tally once a second\n"
            f"  submits {report.open_submit.summary(SUBMIT_OK)}\n"
            f"  polls   {report.open_polls.summary(READ_OK)}\n"
            f"  {report.open_connections} client connections; server CPU {open_cpu:.2f} s;"
            f" the host took {stolen:.2f} s (steal)\n"
            f"  submits over 100 ms, by second of the run: {slow_by_second(report.open_submit, 0.1) or 'none'}")

        small_bodies = submits(rng, api.mint(small, args.small))
        arun(client.closed_loop("127.0.0.1", port, small_bodies, 1))
        report.small_count = api.tally(small)["ballots_counted"]
        report.big_count = api.tally(big)["ballots_counted"]
        tally_small = client.get(f"/api/v1/meetings/{small}/tally", headers=auth)
        tally_big = client.get(f"/api/v1/meetings/{big}/tally", headers=auth)
        report.tally_reads = arun(interleaved_reads(port, tally_small, tally_big, args.reads))
        api.close(small)
        started = time.perf_counter()
        api.close(big)
        report.close_big_s = time.perf_counter() - started
        result_small = client.get(f"/api/v1/meetings/{small}/result", headers=auth)
        result_big = client.get(f"/api/v1/meetings/{big}/result", headers=auth)
        report.result_reads = arun(interleaved_reads(port, result_small, result_big, args.reads))
        for name, reads in (("tally ", report.tally_reads), ("result", report.result_reads)):
            say(f"read {name} {report.small_count:>6} ballots: {reads.small.summary(READ_OK)}\n"
                f"            {report.big_count:>6} ballots: {reads.big.summary(READ_OK)}\n"
                f"            ratio of means {reads.ratio:.2f} (target <= {TARGET_READ_RATIO})")
        say(f"closing the {report.big_count}-ballot meeting took {report.close_big_s * 1000:.0f} ms")
    return report


@contextmanager
def profiling(server: Server | None, folder: Path | None, name: str) -> Iterator[None]:
    """py-spy on the server's processes for the length of the block, when asked for."""
    if folder is None or server is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    assert server.proc is not None
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.proc.pid), "--subprocesses",
         "--rate", "250", "--gil", "--format", "raw", "--output", str(folder / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        say(f"  profile: {folder / name}.txt (collapsed stacks, flamegraph.pl's input)")
        say(top_frames(folder / f"{name}.txt"))


def top_frames(path: Path, limit: int = 25) -> str:
    """Where the server held the GIL most, counting a frame once per stack (inclusive)."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        # The first frame names the process; line numbers would split one function into many.
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")[1:]}:
            inclusive[frame] = inclusive.get(frame, 0) + n
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])[:limit]
    return "\n".join(f"  {n / total:6.1%}  {frame}" for frame, n in rows) if total else "  (no samples)"


def say(text: str) -> None:
    print(text, flush=True)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{nproc} cores ({model}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


def readme_section(reports: list[Report], command: str) -> str:
    ms = 1000.0
    lines = [
        "## Performance",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()}, with `{command}`"
        " (client and server on the same machine, over loopback).",
        "",
        "| backend | workers | ceiling /s | submit /s | ratio | closed-loop p50 / p99 ms"
        " | open-loop p99 ms, errors | tally read 10 vs N ballots | result read 10 vs N |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        assert r.ceiling and r.submit and r.open_submit and r.tally_reads and r.result_reads
        lines.append(
            f"| {r.backend} | {r.workers} | {r.ceiling.stats.throughput:,.0f} | {r.submit.stats.throughput:,.0f}"
            f" | {r.ratio:.2f} | {r.submit.stats.percentile(50) * ms:.1f} / {r.submit.stats.percentile(99) * ms:.1f}"
            f" | {r.open_submit.percentile(99) * ms:.1f}, {r.open_submit.errors(SUBMIT_OK)}"
            f" | {r.tally_reads.mean(r.tally_reads.small) * ms:.2f} vs {r.tally_reads.mean(r.tally_reads.big) * ms:.2f}"
            f" ms (N={r.big_count}, ×{r.tally_reads.ratio:.2f})"
            f" | {r.result_reads.mean(r.result_reads.small) * ms:.2f} vs"
            f" {r.result_reads.mean(r.result_reads.big) * ms:.2f} ms (×{r.result_reads.ratio:.2f}) |"
        )
    return "\n".join(lines)


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--ballots", type=int, default=10_000, help="closed loop: ballots into one meeting")
    parser.add_argument("--connections", type=int, default=64, help="closed loop: concurrent connections")
    parser.add_argument("--rounds", type=int, default=6, help="closed loop: turns taken by ceiling and service")
    parser.add_argument("--meetings", type=int, default=10, help="open loop: meetings open at once")
    parser.add_argument("--open-ballots", type=int, default=2_000, help="open loop: ballots in all")
    parser.add_argument("--rate", type=float, default=200.0, help="open loop: ballots per second")
    parser.add_argument("--dashboards", type=int, default=20, help="open loop: dashboards polling the tally")
    parser.add_argument("--small", type=int, default=10, help="reads: ballots in the small meeting")
    parser.add_argument("--reads", type=int, default=300, help="reads: requests per meeting and kind")
    parser.add_argument("--setting", action="append", default=[], type=setting, metavar="NAME=VALUE",
                        help="a service setting for an experiment, e.g. k_anonymity=1000000")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the closed loop with py-spy (pip install py-spy) into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and server logs")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    if "postgresql" in backends and not pg_available():
        if args.backend == "postgresql":
            parser.error("PostgreSQL does not answer on 127.0.0.1:5432")
        say("PostgreSQL does not answer on 127.0.0.1:5432: SQLite only")
        backends.remove("postgresql")
    command = "make bench" if argv is None and len(sys.argv) == 1 else "python -m bench.run " + " ".join(sys.argv[1:])
    say(f"onsite-ballot benchmark · {dt.date.today().isoformat()} · {machine()}")
    work = Path(tempfile.mkdtemp(prefix="onsite-bench-"))
    reports = [bench_backend(backend, args, work) for backend in backends]
    failed = []
    for r in reports:
        assert r.open_submit is not None and r.tally_reads is not None and r.result_reads is not None
        if r.ratio < TARGET_RATIO:
            failed.append(f"{r.backend}: ratio {r.ratio:.2f} < {TARGET_RATIO}")
        if r.open_submit.percentile(99) * 1000 >= TARGET_P99_MS or r.open_submit.errors(SUBMIT_OK):
            failed.append(f"{r.backend}: open-loop p99 {r.open_submit.percentile(99) * 1000:.1f} ms,"
                          f" {r.open_submit.errors(SUBMIT_OK)} errors")
        for kind, reads in (("tally", r.tally_reads), ("result", r.result_reads)):
            if reads.ratio > TARGET_READ_RATIO:
                failed.append(f"{r.backend}: {kind} read ratio {reads.ratio:.2f} > {TARGET_READ_RATIO}")
    say("\n---- README section ----\n" + readme_section(reports, command) + "\n------------------------")
    say("targets: " + ("all met" if not failed else "MISSED: " + "; ".join(failed)))
    if args.keep:
        say(f"kept {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
