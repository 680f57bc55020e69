"""The first second of a burst (issue #13, point 7).

What it paid for: the served process holds some 150,000 objects from its imports and the app, and
the first full collections of the garbage collector came with the first burst of ballots, each
walking all of them with the event loop stopped (120-150 ms of CPU each, three in the first seconds
of `python -m bench.cold`; with a gc callback in the worker). A served app freezes them at start, so
a full collection walks only what the serving has made since (about 20,000 objects: 16 ms).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.service import ROOT, free_port, service_env

# A fresh interpreter that builds the served app.
pytestmark = pytest.mark.slow

PROBE = """
import gc, json, time
from app.main import app_from_env
app_from_env()
started = time.thread_time()
gc.collect()
print(json.dumps({"frozen": gc.get_freeze_count(), "walked": len(gc.get_objects()),
                  "full_collection_ms": (time.thread_time() - started) * 1000}))
"""


def test_a_served_app_freezes_what_it_made_at_start(tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", free_port())
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["frozen"] > 50_000, found
    # What a full collection still walks is a small part of what the process holds.
    assert found["walked"] < found["frozen"] / 5, found
