"""Slowing down anyone who guesses ballot codes. In memory only: an address is never stored or logged.

Only failures count. A code is looked up first; a valid one always goes through, whatever its
address has been doing: all the phones on a venue's Wi-Fi share one address, and one phone's wrong
codes must not refuse another's ballot. A wrong code spends one from two buckets, the address's
(GUESS_BURST, refilled at GUESS_REFILL_PER_S) and one shared by all addresses (GUESS_BURST_ALL,
GUESS_REFILL_ALL_PER_S). A wrong code names no meeting, so it is a guess at every open meeting's
codes at once: the shared bucket is the limit per meeting, and it holds against a guesser who
rotates addresses. While either bucket is empty, wrong codes are answered 429 with Retry-After
instead of "unknown".

What keeps guessing hopeless is the code's 49 bits, not this guard: as a valid code is never
refused, the guard cannot stop a guess from being tried. At the service's whole ceiling (about
3,000 requests a second) one guess in 2^49 / 1,000 live codes hits: once in about six years.

Several workers: each keeps its own buckets, so each gets its share of the budget
(``for_workers``); connections are spread over the workers, and together they allow what one
process would. A room behind one address makes a few typos a minute, far inside either burst.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

GUESS_BURST = 30.0
GUESS_REFILL_PER_S = 0.5
# Every address together: ten rooms of typing phones stay far inside it; a botnet does not.
GUESS_BURST_ALL = 300.0
GUESS_REFILL_ALL_PER_S = 5.0
# Bounded memory: the least recently seen addresses are forgotten first.
MAX_ADDRESSES = 50_000


@dataclass
class _Bucket:
    tokens: float
    at: float

    def refill(self, now: float, burst: float, rate: float) -> None:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now

    def wait(self, rate: float) -> int | None:
        """Seconds until a whole wrong code is allowed again; None while one is."""
        return None if self.tokens >= 1 else max(1, math.ceil((1 - self.tokens) / rate))


class GuessGuard:
    def __init__(
        self,
        *,
        burst: float = GUESS_BURST,
        refill_per_s: float = GUESS_REFILL_PER_S,
        burst_all: float = GUESS_BURST_ALL,
        refill_all_per_s: float = GUESS_REFILL_ALL_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.refill = burst, refill_per_s
        self.burst_all, self.refill_all = burst_all, refill_all_per_s
        self._clock = clock
        self._all = _Bucket(burst_all, clock())
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @classmethod
    def for_workers(cls, workers: int, *, clock: Callable[[], float] = time.monotonic) -> GuessGuard:
        """One worker's share of the budget when ``workers`` processes serve the same clients."""
        share = max(1, workers)
        return cls(burst=GUESS_BURST / share, refill_per_s=GUESS_REFILL_PER_S / share,
                   burst_all=GUESS_BURST_ALL / share, refill_all_per_s=GUESS_REFILL_ALL_PER_S / share, clock=clock)

    def _bucket(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(self.burst, now)
            if len(self._buckets) > MAX_ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            bucket.refill(now, self.burst, self.refill)
            self._buckets.move_to_end(address)
        return bucket

    def failed(self, address: str | None) -> int | None:
        """Count one wrong code from ``address``. None: answer "unknown"; a number: answer 429 and
        ask the client to wait that many seconds. A refused guess is counted too: guessing on while
        told to wait keeps the bucket empty."""
        now = self._clock()
        self._all.refill(now, self.burst_all, self.refill_all)
        buckets = [(self._all, self.refill_all)]
        if address is not None:
            buckets.append((self._bucket(address, now), self.refill))
        waits = [wait for bucket, rate in buckets if (wait := bucket.wait(rate)) is not None]
        for bucket, _ in buckets:
            bucket.tokens = max(0.0, bucket.tokens - 1)
        return max(waits) if waits else None
