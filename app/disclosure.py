"""What may become readable or public, and when: the K rules of guarantee 1. Pure.

Two publications that differ by fewer than K ballots give those ballots away: the figures at 15
ballots and at 16 give the 16th ballot's answers; an overall total minus the groups shown gives a
hidden group's total; a result closed again with one late ballot gives that ballot. So:

- ballots become readable only in mixed groups of at least K (``mix_selection``), and the mixer
  keeps at least K back until close, so that the last group is never smaller than K either;
- the live figures move only when a group is mixed, and never show rater groups apart (a group's
  figures could move by fewer than K between two steps);
- at close a group is shown apart only with at least K ballots, and the groups hidden together
  hold none or at least K (``shown_groups``);
- a meeting closes only with at least K ballots, and closing again must add none or at least K
  (``reclose_gap_ok``); each part of a group breakdown must likewise change by none or at least K
  from every earlier version, or the breakdown is hidden (``breakdown``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
GroupKey = str | None
# A source of random bytes: os.urandom in the service, a fixed one in tests.
RandomBytes = Callable[[int], bytes]
# Each item is placed by 128 random bits: two equal keys among a meeting's ballots would take about
# 2**64 of them.
SORT_KEY_BYTES = 16


def random_order(items: Sequence[T], random_bytes: RandomBytes) -> list[T]:
    """The items in a uniformly random order, from one read of the system's randomness (a shuffle
    drawing a number per item would read it once per item)."""
    keys = random_bytes(SORT_KEY_BYTES * len(items))
    order = sorted(range(len(items)), key=lambda i: keys[SORT_KEY_BYTES * i : SORT_KEY_BYTES * (i + 1)])
    return [items[i] for i in order]


def mix_selection(pending: Sequence[T], *, k: int, final: bool, random_bytes: RandomBytes) -> list[T]:
    """The sealed ballots to mix now, in the random order they are to be written.

    While the meeting is open: nothing until 2K wait, then all but K of them, chosen at random,
    so that at least K are always left for the next group. At close: all of them. (The first n-K
    of a random order are a random choice of n-K, in a random order.)
    """
    if not final and len(pending) < 2 * k:
        return []
    shuffled = random_order(pending, random_bytes)
    return shuffled if final else shuffled[: len(pending) - k]


def mix_due(pending: int, *, k: int) -> bool:
    return pending >= 2 * k


def can_close(ballots: int, *, k: int) -> bool:
    """A result of fewer than K ballots would publish those few ballots' answers."""
    return ballots >= k


def reclose_gap_ok(*, published: int, total: int, k: int) -> bool:
    """Closing again after a reopen: the new version may differ from the last by none or at least K."""
    added = total - published
    return added == 0 or added >= k


def shown_groups(counts: Mapping[GroupKey, int], *, k: int) -> frozenset[GroupKey]:
    """The rater groups whose figures may be shown apart.

    A group with fewer than K ballots is hidden. If the hidden groups together hold between 1 and
    K-1 ballots, the overall figures minus the shown groups would give them away: the smallest
    shown groups are hidden with them until the hidden ones hold at least K, or nothing is shown.
    """
    shown = {key for key, n in counts.items() if n >= k}
    hidden = sum(n for key, n in counts.items() if key not in shown)
    for key in sorted(shown, key=lambda g: (counts[g], str(g))):
        if hidden == 0 or hidden >= k:
            break
        shown.discard(key)
        hidden += counts[key]
    if 0 < hidden < k:
        return frozenset()
    return frozenset(shown)


@dataclass(frozen=True)
class Breakdown:
    """A published version's groups: the true counts, and which were shown apart."""

    counts: dict[GroupKey, int]
    shown: frozenset[GroupKey]

    def parts(self) -> dict[frozenset[GroupKey], int]:
        """What can be derived from the version: each shown group, and the hidden ones together."""
        parts = {frozenset([key]): self.counts.get(key, 0) for key in self.shown}
        hidden = frozenset(key for key in self.counts if key not in self.shown)
        if hidden:
            parts[hidden] = sum(self.counts[key] for key in hidden)
        return parts


def breakdown(counts: Mapping[GroupKey, int], earlier: Sequence[Breakdown], *, k: int) -> Breakdown:
    """The groups a new version may show, given the versions published before it.

    Within the version, ``shown_groups``. Across versions, every part (a shown group, or the
    hidden groups together) must be the same part in each earlier version and have changed by
    none or at least K ballots; otherwise the whole breakdown of this version is hidden.
    """
    current = Breakdown(dict(counts), shown_groups(counts, k=k))
    now = current.parts()
    for before in earlier:
        then = before.parts()
        if set(then) != set(now) or any(0 < abs(now[part] - then[part]) < k for part in now):
            return Breakdown(dict(counts), frozenset())
    return current


def group_counts_visible(state: str, shown: Collection[GroupKey] | None, key: GroupKey) -> bool:
    """Whether a rater group's count of spent codes may be shown: never while voting goes on (each
    step would tell the room which group just voted), after close only for the groups shown apart."""
    return state == "closed" and shown is not None and key in shown
