"""The arithmetic of a meeting's score. Pure: Decimal and Fraction only, no floats, no I/O.

A mean such as 280/3 has no finite decimal, so means are kept as exact Fractions and rounded
half up only for display. ``exact()`` writes a Fraction as a terminating decimal when it has one
and as ``p/q`` otherwise; both forms parse back with ``fractions.Fraction`` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

from app.templates import BallotTemplate, point_scores

# DESIGN.md: "with more than 5 ballots, the single highest and lowest totals are dropped".
TRIM_MIN_BALLOTS = 5
DISPLAY_PLACES = 2
DEFAULT_COMPONENT_WEIGHT = Decimal("0.4")

FlaggedRule = Literal["count", "exclude"]
ScoreStatus = Literal["ok", "no_ballots", "too_few", "insufficient"]


@dataclass(frozen=True)
class ScoredBallot:
    """One ballot's answers turned into numbers."""

    group: str | None
    answers: Mapping[str, str]
    points: Mapping[str, Decimal]
    total: Decimal
    flagged: bool

    @property
    def canonical(self) -> str:
        return canonical_json({"group": self.group, "answers": dict(self.answers)})

    @property
    def order_key(self) -> tuple[Decimal, str]:
        # Ties on the total are broken by the answers themselves, so which of two equal totals is
        # trimmed is decided by content alone and a recount always drops the same ballots.
        return (self.total, self.canonical)


@dataclass(frozen=True)
class GroupSpec:
    key: str
    name: str
    weight: Decimal | None = None  # percent, e.g. Decimal("25"); None when the meeting is unweighted


@dataclass(frozen=True)
class Rules:
    trim: int = 1
    k: int = 5
    component_weight: Decimal = DEFAULT_COMPONENT_WEIGHT
    flagged_rule: FlaggedRule = "count"


@dataclass(frozen=True)
class GroupFigures:
    key: str
    name: str
    weight: Decimal | None
    ballots: int
    # None when the group has fewer than k ballots: a small group is never shown apart.
    score: Fraction | None


@dataclass(frozen=True)
class Figures:
    """Everything a meeting's tally or result says, exact."""

    ballots: int
    counted: int  # ballots that entered the mean (after flag exclusion and trimming)
    dropped: int  # by the trim rule
    flagged: int
    excluded_flagged: int
    status: ScoreStatus
    score: Fraction | None
    component: Fraction | None
    total_sum: Decimal  # sum of the counted ballots' totals
    point_averages: dict[str, Fraction] = field(default_factory=dict)
    item_averages: dict[str, Fraction] = field(default_factory=dict)
    groups: list[GroupFigures] = field(default_factory=list)
    insufficient_groups: list[str] = field(default_factory=list)


def canonical_json(value: object) -> str:
    """The one serialization used for digests and tie-breaks: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def score_ballot(template: BallotTemplate, answers: Mapping[str, str], group: str | None) -> ScoredBallot:
    points = point_scores(template, answers)
    total = sum(points.values(), Decimal(0))
    return ScoredBallot(
        group=group,
        answers=dict(answers),
        points=points,
        total=total,
        flagged=is_uniform(template, points, answers),
    )


def is_uniform(
    template: BallotTemplate, points: Mapping[str, Decimal], answers: Mapping[str, str] | None = None
) -> bool:
    """True when every point got the same share of its maximum (all 好, all 差, all full marks…).

    On a template graded throughout, a point's share is its grade's fraction: read it from the
    answers instead of dividing 19 Decimals on the path every ballot takes."""
    if len(template.points) <= 1:
        return False
    fractions = template.grade_fractions
    if answers is not None and fractions is not None:
        return len({fractions[answers[point.id]] for point in template.points}) == 1
    return len({points[point.id] / point.max for point in template.points}) == 1


def trimmed(ballots: Sequence[ScoredBallot], trim: int) -> tuple[list[ScoredBallot], int]:
    """The ballots that count after dropping ``trim`` highest and lowest totals, and how many went."""
    if trim <= 0 or len(ballots) <= max(TRIM_MIN_BALLOTS, 2 * trim):
        return list(ballots), 0
    ordered = sorted(ballots, key=lambda ballot: ballot.order_key)
    return ordered[trim:-trim], 2 * trim


@dataclass(frozen=True)
class Kept:
    """The ballots that count, after the trim rule, summed: what a mean and its points need."""

    count: int
    dropped: int
    total_sum: Decimal
    point_sums: dict[str, Decimal]

    @property
    def mean(self) -> Fraction:
        return Fraction(self.total_sum) / self.count

    def point_averages(self) -> dict[str, Fraction]:
        return {point: Fraction(value) / self.count for point, value in self.point_sums.items()}


def kept_of(template: BallotTemplate, ballots: Sequence[ScoredBallot], trim: int) -> Kept:
    kept, dropped = trimmed(ballots, trim)
    sums = {point.id: sum((ballot.points[point.id] for ballot in kept), Decimal(0)) for point in template.points}
    return Kept(len(kept), dropped, sum((ballot.total for ballot in kept), Decimal(0)), sums)


# Given the group keys to take together (all eligible groups, or one), the ballots that count.
KeptSource = Callable[[Sequence[str | None]], Kept]


def assemble(
    template: BallotTemplate,
    groups: Sequence[GroupSpec],
    rules: Rules,
    *,
    ballots: int,
    flagged: int,
    eligible: Mapping[str | None, int],
    kept: KeptSource,
) -> Figures:
    """A meeting's figures from counts and a source of trimmed sums, following DESIGN.md's rules.

    Fewer than k valid ballots in all: no score ("too_few"). Unweighted: the trimmed mean of all counted
    totals. Weighted: each weighted group's trimmed
    mean times its weight; every weighted group needs at least k ballots or the score is
    "insufficient". Point averages are taken over the same ballots as the score, so that they
    add up to it exactly: the result can be explained point by point. ``compute`` feeds it from
    the ballots, ``app.tally`` from running sums: one set of rules, two sources.
    """
    group_figures = []
    for spec in groups:
        members = eligible.get(spec.key, 0)
        score = kept([spec.key]).mean if members >= rules.k else None
        group_figures.append(GroupFigures(spec.key, spec.name, spec.weight, members, score))
    total_eligible = sum(eligible.values())
    base: dict[str, Any] = dict(
        ballots=ballots, flagged=flagged, excluded_flagged=ballots - total_eligible, groups=group_figures
    )
    if total_eligible == 0:
        return Figures(
            counted=0, dropped=0, status="no_ballots", score=None, component=None, total_sum=Decimal(0), **base
        )
    if total_eligible < rules.k:
        # The mean of fewer than K ballots (with uniform ballots excluded, say) would publish what
        # those few said: no score, as for a group below K.
        return Figures(
            counted=0, dropped=0, status="too_few", score=None, component=None, total_sum=Decimal(0), **base
        )
    weighted = [spec for spec in groups if spec.weight]
    if not weighted:
        every = kept(list(eligible))
        parts = [(Fraction(1), every)]
    else:
        short = [spec.key for spec in weighted if eligible.get(spec.key, 0) < rules.k]
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
        parts = [(Fraction(spec.weight) / 100, kept([spec.key])) for spec in weighted]  # type: ignore[arg-type]
    score = sum((share * part.mean for share, part in parts), Fraction(0))
    points = {point.id: Fraction(0) for point in template.points}
    for share, part in parts:
        for key, value in part.point_averages().items():
            points[key] += share * value
    items = {item.id: sum((points[p.id] for p in item.points), Fraction(0)) for item in template.items}
    return Figures(
        counted=sum(part.count for _, part in parts),
        dropped=sum(part.dropped for _, part in parts),
        status="ok",
        score=score,
        component=score * Fraction(rules.component_weight),
        total_sum=sum((part.total_sum for _, part in parts), Decimal(0)),
        point_averages=points,
        item_averages=items,
        **base,
    )


def compute(
    template: BallotTemplate,
    ballots: Sequence[ScoredBallot],
    groups: Sequence[GroupSpec],
    rules: Rules,
) -> Figures:
    """A meeting's figures from all its ballots (see ``assemble`` for the rules)."""
    eligible = [b for b in ballots if not (b.flagged and rules.flagged_rule == "exclude")]
    by_group: dict[str | None, list[ScoredBallot]] = {}
    for ballot in eligible:
        by_group.setdefault(ballot.group, []).append(ballot)

    def kept(keys: Sequence[str | None]) -> Kept:
        return kept_of(template, [b for key in keys for b in by_group.get(key, [])], rules.trim)

    return assemble(
        template,
        groups,
        rules,
        ballots=len(ballots),
        flagged=sum(1 for ballot in ballots if ballot.flagged),
        eligible={key: len(members) for key, members in by_group.items()},
        kept=kept,
    )


# Bands of ballot totals for the distribution chart: below 60, then by tens.
DISTRIBUTION_EDGES = (Decimal(0), Decimal(60), Decimal(70), Decimal(80), Decimal(90), Decimal(100))


def distribution(totals: Sequence[Decimal]) -> list[int]:
    """How many totals fall in [0, 60), [60, 70), [70, 80), [80, 90), [90, 100]."""
    counts = [0] * (len(DISTRIBUTION_EDGES) - 1)
    for total in totals:
        index = band_of(total)
        if index is not None:
            counts[index] += 1
    return counts


def band_of(total: Decimal) -> int | None:
    """The index of the distribution band a total falls in; None outside [0, 100]."""
    last = len(DISTRIBUTION_EDGES) - 2
    for index in range(last + 1):
        if DISTRIBUTION_EDGES[index] <= total and (total < DISTRIBUTION_EDGES[index + 1] or index == last):
            return index
    return None


def round_half_up(value: Fraction | Decimal, places: int = DISPLAY_PLACES) -> Decimal:
    """Round exactly, half away from zero as people round by hand: 93.125 -> 93.13."""
    fraction = Fraction(value)
    sign = -1 if fraction < 0 else 1
    scaled = abs(fraction) * 10**places
    # Integer arithmetic on the exact fraction: no intermediate decimal can round twice.
    whole, remainder = divmod(scaled.numerator, scaled.denominator)
    if remainder * 2 >= scaled.denominator:
        whole += 1
    # Built from a string, which Decimal takes exactly: scaleb/quantize would round to the
    # context's 28 digits (or raise) on a long value.
    return Decimal(f"{sign * whole}E-{places}")


def exact(value: Fraction | Decimal) -> str:
    """An exact string: '93.5' when the decimal terminates, '280/3' when it does not."""
    fraction = Fraction(value)
    denominator = fraction.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        return f"{fraction.numerator}/{fraction.denominator}"
    places = max(twos, fives)
    # Integer digits, placed by hand: Decimal's scaleb/normalize would round to the context's
    # 28 significant digits and the text would no longer parse back to the same value.
    scaled = fraction.numerator * 10**places // fraction.denominator  # exact: q divides 10**places
    digits = str(abs(scaled)).rjust(places + 1, "0")
    whole, decimals = digits[: len(digits) - places], digits[len(digits) - places :].rstrip("0")
    sign = "-" if scaled < 0 else ""
    return f"{sign}{whole}.{decimals}" if decimals else f"{sign}{whole}"
