"""The live tally kept up to date ballot by ballot, so that publishing costs the same at 10 ballots
as at 10,000. Pure.

Per rater group it keeps counts and exact sums, and the ``trim`` highest and lowest ballots (by the
same order key as ``scoring.trimmed``): enough to compute exactly what ``scoring.compute`` computes
from all the ballots. ``tests/test_tally.py`` holds the two to the same figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.scoring import (
    DISTRIBUTION_EDGES,
    TRIM_MIN_BALLOTS,
    Figures,
    GroupSpec,
    Kept,
    Rules,
    ScoredBallot,
    assemble,
    band_of,
)
from app.templates import BallotTemplate

OrderKey = tuple[Decimal, str]
# Made once: a Decimal built per point of every ballot cost a fifth of adding a ballot.
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Extreme:
    """A ballot that may be trimmed: its order key and its points."""

    total: Decimal
    canonical: str
    points: dict[str, Decimal]

    @property
    def key(self) -> OrderKey:
        return (self.total, self.canonical)


@dataclass
class GroupTally:
    ballots: int = 0  # every stored ballot of the group
    flagged: int = 0
    eligible: int = 0  # the ballots that enter the mean (flagged ones may be excluded)
    total_sum: Decimal = Decimal(0)
    point_sums: dict[str, Decimal] = field(default_factory=dict)
    highest: list[Extreme] = field(default_factory=list)  # descending by key, at most `trim`
    lowest: list[Extreme] = field(default_factory=list)  # ascending by key, at most `trim`
    bands: list[int] = field(default_factory=lambda: [0] * (len(DISTRIBUTION_EDGES) - 1))

    def add(self, ballot: ScoredBallot, rules: Rules) -> None:
        self.ballots += 1
        band = band_of(ballot.total)
        if band is not None:
            self.bands[band] += 1
        if ballot.flagged:
            self.flagged += 1
            if rules.flagged_rule == "exclude":
                return
        self.eligible += 1
        self.total_sum += ballot.total
        sums = self.point_sums
        for point, score in ballot.points.items():
            sums[point] = sums.get(point, _ZERO) + score
        if rules.trim > 0:
            # Most ballots fall between the extremes: decide on the total alone before paying for the
            # canonical text that breaks ties.
            high = len(self.highest) < rules.trim or ballot.total >= self.highest[-1].total
            low = len(self.lowest) < rules.trim or ballot.total <= self.lowest[-1].total
            if high or low:
                extreme = Extreme(ballot.total, ballot.canonical, dict(ballot.points))
                if high:
                    self.highest = sorted([*self.highest, extreme], key=lambda e: e.key, reverse=True)[: rules.trim]
                if low:
                    self.lowest = sorted([*self.lowest, extreme], key=lambda e: e.key)[: rules.trim]


@dataclass
class MeetingTally:
    groups: dict[str | None, GroupTally] = field(default_factory=dict)

    def add(self, ballot: ScoredBallot, rules: Rules) -> None:
        self.groups.setdefault(ballot.group, GroupTally()).add(ballot, rules)

    # -- storage ---------------------------------------------------------------------------------

    def to_json(self) -> str:
        def extreme(e: Extreme) -> dict[str, Any]:
            return {"total": str(e.total), "canonical": e.canonical, "points": {k: str(v) for k, v in e.points.items()}}

        return json.dumps(
            {
                "groups": [
                    {
                        "key": key,
                        "ballots": g.ballots,
                        "flagged": g.flagged,
                        "eligible": g.eligible,
                        "total_sum": str(g.total_sum),
                        "point_sums": {k: str(v) for k, v in g.point_sums.items()},
                        "highest": [extreme(e) for e in g.highest],
                        "lowest": [extreme(e) for e in g.lowest],
                        "bands": g.bands,
                    }
                    for key, g in self.groups.items()
                ]
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> MeetingTally:
        def extreme(raw: Mapping[str, Any]) -> Extreme:
            return Extreme(Decimal(raw["total"]), raw["canonical"], {k: Decimal(v) for k, v in raw["points"].items()})

        tally = cls()
        for raw in json.loads(text)["groups"]:
            tally.groups[raw["key"]] = GroupTally(
                ballots=raw["ballots"],
                flagged=raw["flagged"],
                eligible=raw["eligible"],
                total_sum=Decimal(raw["total_sum"]),
                point_sums={k: Decimal(v) for k, v in raw["point_sums"].items()},
                highest=[extreme(e) for e in raw["highest"]],
                lowest=[extreme(e) for e in raw["lowest"]],
                bands=list(raw["bands"]),
            )
        return tally

    # -- figures ---------------------------------------------------------------------------------

    def distribution(self) -> list[int]:
        counts = [0] * (len(DISTRIBUTION_EDGES) - 1)
        for group in self.groups.values():
            counts = [a + b for a, b in zip(counts, group.bands, strict=True)]
        return counts

    def figures(self, template: BallotTemplate, groups: Sequence[GroupSpec], rules: Rules) -> Figures:
        """Exactly what ``scoring.compute`` gives for all the ballots added so far."""
        return self.snapshot(template, rules).figures(template, groups, rules)

    def snapshot(self, template: BallotTemplate, rules: Rules) -> Snapshot:
        """The tally reduced to what the figures need: counts and trimmed sums, no single ballot."""
        eligible = {key: g.eligible for key, g in self.groups.items() if g.eligible}
        return Snapshot(
            ballots=sum(g.ballots for g in self.groups.values()),
            flagged=sum(g.flagged for g in self.groups.values()),
            eligible=eligible,
            together=_trimmed(template, [self.groups[key] for key in eligible], rules.trim),
            by_group={key: _trimmed(template, [g], rules.trim) for key, g in self.groups.items()},
            bands=self.distribution(),
        )


@dataclass(frozen=True)
class Snapshot:
    """The live figures' inputs at one step of K, as the published state keeps them.

    Unlike the running tally it holds no ballot of its own (the running tally keeps the highest
    and lowest ballots to trim them): only counts, the distribution and sums over at least the
    ballots that were kept. ``scoring.assemble`` asks for the kept ballots of one group or of all
    eligible groups together; both are here.
    """

    ballots: int
    flagged: int
    eligible: dict[str | None, int]
    together: Kept  # all eligible groups
    by_group: dict[str | None, Kept]
    bands: list[int]

    def figures(self, template: BallotTemplate, groups: Sequence[GroupSpec], rules: Rules) -> Figures:
        empty = Kept(count=0, dropped=0, total_sum=Decimal(0), point_sums={p.id: Decimal(0) for p in template.points})

        def kept(keys: Sequence[str | None]) -> Kept:
            if len(keys) == 1:
                return self.by_group.get(keys[0], empty)
            assert set(keys) == set(self.eligible), "assemble asks for one group or all eligible ones"
            return self.together

        return assemble(
            template, groups, rules, ballots=self.ballots, flagged=self.flagged, eligible=self.eligible, kept=kept
        )

    def distribution(self) -> list[int]:
        return list(self.bands)

    def to_json(self) -> str:
        def kept(k: Kept) -> dict[str, Any]:
            return {"count": k.count, "dropped": k.dropped, "total_sum": str(k.total_sum),
                    "point_sums": {p: str(v) for p, v in k.point_sums.items()}}

        return json.dumps(
            {
                "ballots": self.ballots,
                "flagged": self.flagged,
                "eligible": [[key, n] for key, n in self.eligible.items()],
                "together": kept(self.together),
                "by_group": [[key, kept(k)] for key, k in self.by_group.items()],
                "bands": self.bands,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        def kept(raw: Mapping[str, Any]) -> Kept:
            return Kept(count=raw["count"], dropped=raw["dropped"], total_sum=Decimal(raw["total_sum"]),
                        point_sums={p: Decimal(v) for p, v in raw["point_sums"].items()})

        raw = json.loads(text)
        return cls(
            ballots=raw["ballots"],
            flagged=raw["flagged"],
            eligible={key: n for key, n in raw["eligible"]},
            together=kept(raw["together"]),
            by_group={key: kept(k) for key, k in raw["by_group"]},
            bands=list(raw["bands"]),
        )


def _trimmed(template: BallotTemplate, tallies: Sequence[GroupTally], trim: int) -> Kept:
    """What ``scoring.kept_of`` gives for the ballots these tallies hold together."""
    n = sum(t.eligible for t in tallies)
    total = sum((t.total_sum for t in tallies), Decimal(0))
    sums = {
        point.id: sum((t.point_sums.get(point.id, Decimal(0)) for t in tallies), Decimal(0))
        for point in template.points
    }
    dropped: list[Extreme] = []
    if trim > 0 and n > max(TRIM_MIN_BALLOTS, 2 * trim):
        highest = sorted((e for t in tallies for e in t.highest), key=lambda e: e.key, reverse=True)[:trim]
        lowest = sorted((e for t in tallies for e in t.lowest), key=lambda e: e.key)[:trim]
        dropped = highest + lowest
    for extreme in dropped:
        total -= extreme.total
        for point, score in extreme.points.items():
            sums[point] -= score
    return Kept(count=n - len(dropped), dropped=len(dropped), total_sum=total, point_sums=sums)
