"""From a ballot's commit to the dashboards' update: `python -m bench.push_latency`.

Starts `onsite-ballot serve` (SQLite, one worker) as a user would, opens DASHBOARDS server-sent event
streams on one meeting, and submits BALLOTS ballots spread evenly over SECONDS. The phone's 201 is sent
after the ballot's transaction commits, so the clock starts when the 201 arrives (a little after the
commit: the figure is if anything an overestimate) and stops when a dashboard's stream first reports a
count that includes that ballot. Prints p50/p95/p99/max over every (ballot, dashboard) pair.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from pathlib import Path

import httpx

from bench.service import Api, create_api_key, free_port, running, service, service_env

DASHBOARDS = 20
BALLOTS = 200
SECONDS = 30.0
ANSWERS = {f"p{i:02d}": "ABCD"[i % 4] for i in range(1, 20)}


async def dashboard(base: str, key: str, meeting_id: int, seen: dict[int, float], ready: asyncio.Event) -> None:
    """Records, for each ballot count, when this dashboard first heard of it."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http, http.stream(
        "GET", f"{base}/api/v1/meetings/{meeting_id}/events", headers=headers
    ) as response:
        response.raise_for_status()
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "tally":
                count = json.loads(line.split(":", 1)[1])["ballots_counted"]
                now = time.perf_counter()
                for n in range(1, count + 1):
                    seen.setdefault(n, now)
                ready.set()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


async def measure(base: str, key: str, meeting_id: int, codes: list[str], dashboards: int, seconds: float) -> None:
    seen: list[dict[int, float]] = [{} for _ in range(dashboards)]
    readies = [asyncio.Event() for _ in range(dashboards)]
    tasks = [asyncio.create_task(dashboard(base, key, meeting_id, seen[i], readies[i])) for i in range(dashboards)]
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 30)
    acked: dict[int, float] = {}
    gap = seconds / len(codes)
    async with httpx.AsyncClient(base_url=base, timeout=10) as phones:
        start = time.perf_counter()
        for n, code in enumerate(codes, start=1):
            await asyncio.sleep(max(0.0, start + n * gap - time.perf_counter()))
            r = await phones.post("/api/v1/ballots", json={"token": code, "answers": ANSWERS})
            assert r.status_code == 201, r.text
            acked[n] = time.perf_counter()
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and any(len(s) < len(codes) for s in seen):
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    latencies = [max(0.0, s[n] - acked[n]) for s in seen for n in acked if n in s]
    missing = sum(1 for s in seen for n in acked if n not in s)
    print(f"{len(codes)} ballots over {seconds:.0f} s, {dashboards} dashboards: {len(latencies)} updates seen, "
          f"{missing} never seen")
    print("commit -> dashboard  " + "  ".join(
        f"p{p} {percentile(latencies, p) * 1000:6.1f} ms" for p in (50, 95, 99)
    ) + f"  max {max(latencies) * 1000:6.1f} ms  (target: p99 under 1000 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboards", type=int, default=DASHBOARDS)
    parser.add_argument("--ballots", type=int, default=BALLOTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="onsite-push-") as tmp:
        env = service_env(Path(tmp) / "data", free_port())
        key = create_api_key(env, "push-bench")
        with running(service(env, 1, Path(tmp) / "server.log")) as server:
            api = Api(server.base, key)
            try:
                api.unit("PUSH")
                meeting_id = api.open_meeting("PUSH", "推送延迟测试", args.ballots)
                codes = api.mint(meeting_id, args.ballots)
            finally:
                api.http.close()
            asyncio.run(measure(server.base, key, meeting_id, codes, args.dashboards, args.seconds))


if __name__ == "__main__":
    main()
