"""Slowing down anyone who guesses ballot codes. In memory only: an address is never stored or logged.

A code has about 49 bits, so guessing is hopeless anyway; this keeps it that way at any request rate.
Each client address has a bucket of GUESS_BURST wrong codes that refills at GUESS_REFILL_PER_S. While it
is empty, that address gets 429 for every code, right or wrong, so that a guess cannot slip through. A
room behind one address (venue Wi-Fi) makes a few typos a minute, far inside the burst.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

GUESS_BURST = 30.0
GUESS_REFILL_PER_S = 0.5
# Bounded memory: the least recently seen addresses are forgotten first.
MAX_ADDRESSES = 50_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class GuessGuard:
    def __init__(self, *, burst: float = GUESS_BURST, refill_per_s: float = GUESS_REFILL_PER_S) -> None:
        self.burst = burst
        self.refill = refill_per_s
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[address] = bucket
            if len(self._buckets) > MAX_ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.refill)
            bucket.at = now
            self._buckets.move_to_end(address)
        return bucket

    def allowed(self, address: str | None, now: float | None = None) -> bool:
        if address is None:
            return True
        return self._bucket(address, time.monotonic() if now is None else now).tokens >= 1

    def wrong(self, address: str | None, now: float | None = None) -> None:
        """A code that is not one: spend one from the address's bucket."""
        if address is None:
            return
        bucket = self._bucket(address, time.monotonic() if now is None else now)
        bucket.tokens = max(0.0, bucket.tokens - 1)

    def retry_after(self, address: str | None) -> int:
        if address is None:
            return 0
        bucket = self._bucket(address, time.monotonic())
        return max(1, int((1 - bucket.tokens) / self.refill) + 1)
