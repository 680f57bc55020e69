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
from fractions import Fraction
from typing import Any

from app.scoring import (
    DISTRIBUTION_EDGES,
    TRIM_MIN_BALLOTS,
    Figures,
    GroupFigures,
    GroupSpec,
    Rules,
    ScoredBallot,
    distribution,
)
from app.templates import BallotTemplate

OrderKey = tuple[Decimal, str]


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
        self.bands = [a + b for a, b in zip(self.bands, distribution([ballot.total]), strict=True)]
        if ballot.flagged:
            self.flagged += 1
            if rules.flagged_rule == "exclude":
                return
        self.eligible += 1
        self.total_sum += ballot.total
        for point, score in ballot.points.items():
            self.point_sums[point] = self.point_sums.get(point, Decimal(0)) + score
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
        ballots = sum(g.ballots for g in self.groups.values())
        flagged = sum(g.flagged for g in self.groups.values())
        eligible = sum(g.eligible for g in self.groups.values())
        group_figures = []
        for spec in groups:
            tally = self.groups.get(spec.key)
            members = tally.eligible if tally else 0
            score = None
            if tally is not None and members >= rules.k:
                score = _trimmed(template, [tally], rules.trim).mean
            group_figures.append(GroupFigures(spec.key, spec.name, spec.weight, members, score))
        base: dict[str, Any] = dict(
            ballots=ballots, flagged=flagged, excluded_flagged=ballots - eligible, groups=group_figures
        )
        if eligible == 0:
            return Figures(
                counted=0, dropped=0, status="no_ballots", score=None, component=None, total_sum=Decimal(0), **base
            )
        weighted = [spec for spec in groups if spec.weight]
        if not weighted:
            kept = _trimmed(template, list(self.groups.values()), rules.trim)
            return Figures(
                counted=kept.count,
                dropped=kept.dropped,
                status="ok",
                score=kept.mean,
                component=kept.mean * Fraction(rules.component_weight),
                total_sum=kept.total_sum,
                point_averages=kept.points,
                item_averages=kept.items(template),
                **base,
            )
        short = [s.key for s in weighted if (self.groups.get(s.key) or GroupTally()).eligible < rules.k]
        if short:
            return Figures(
                counted=0,
                dropped=0,
                status="insufficient",
                score=None,
                component=None,
                total_sum=Decimal(0),
                insufficient_groups=short,
                **base,
            )
        score = Fraction(0)
        points = {point.id: Fraction(0) for point in template.points}
        counted = dropped = 0
        total_sum = Decimal(0)
        for spec in weighted:
            assert spec.weight is not None
            share = Fraction(spec.weight) / 100
            kept = _trimmed(template, [self.groups[spec.key]], rules.trim)
            counted, dropped, total_sum = counted + kept.count, dropped + kept.dropped, total_sum + kept.total_sum
            score += share * kept.mean
            for key, value in kept.points.items():
                points[key] += share * value
        items = {item.id: sum((points[p.id] for p in item.points), Fraction(0)) for item in template.items}
        return Figures(
            counted=counted,
            dropped=dropped,
            status="ok",
            score=score,
            component=score * Fraction(rules.component_weight),
            total_sum=total_sum,
            point_averages=points,
            item_averages=items,
            **base,
        )


@dataclass(frozen=True)
class _Kept:
    count: int
    dropped: int
    total_sum: Decimal
    mean: Fraction
    points: dict[str, Fraction]

    def items(self, template: BallotTemplate) -> dict[str, Fraction]:
        return {item.id: sum((self.points[p.id] for p in item.points), Fraction(0)) for item in template.items}


def _trimmed(template: BallotTemplate, tallies: Sequence[GroupTally], trim: int) -> _Kept:
    """The trimmed mean of the ballots these tallies hold together, as ``scoring.trimmed`` takes it."""
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
    count = n - len(dropped)
    return _Kept(
        count=count,
        dropped=len(dropped),
        total_sum=total,
        mean=Fraction(total) / count,
        points={point: Fraction(value) / count for point, value in sums.items()},
    )
