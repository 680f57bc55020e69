"""The year overview: which units had their on-site review, how they scored, who is overdue. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from app.schemas import OverviewPage, OverviewUnit, ResultRecord

# "Every unit must have one within two to three years": this year and the two before.
REVIEW_WINDOW_YEARS = 3


@dataclass(frozen=True)
class UnitYears:
    code: str
    name: str
    category: str
    category_name: str
    years_reviewed: frozenset[int]  # closed meetings in the service, and years recorded from before
    result: ResultRecord | None  # this year's latest closed result
    known_since: int = 0  # the year the unit came into the service
    in_progress: bool = False  # a meeting of the window's years is being prepared or held
    ever_reviewed: bool = False  # any review at all is known, however long ago


def history_known(unit: UnitYears, year: int) -> bool:
    """Whether the service can tell that a unit had no review in the window: it has known the unit
    since the window began, or someone recorded the unit's reviews (a last one long ago included).
    A unit added this year with no past years recorded is not overdue; it is unknown."""
    return unit.ever_reviewed or unit.known_since <= window(year)[-1]


def overdue(unit: UnitYears, year: int) -> bool:
    reviewed = any(y in unit.years_reviewed for y in window(year))
    return not reviewed and not unit.in_progress and history_known(unit, year)


def window(year: int) -> list[int]:
    return [year - offset for offset in range(REVIEW_WINDOW_YEARS)]


def ranks(scores: dict[str, Fraction]) -> dict[str, int]:
    """Competition ranking, best first: 90, 85, 85, 80 -> 1, 2, 2, 4."""
    ordered = sorted(scores.values(), reverse=True)
    return {key: ordered.index(value) + 1 for key, value in scores.items()}


def build_overview(*, year: int, category: str | None, units: Sequence[UnitYears]) -> OverviewPage:
    years = window(year)
    by_category: dict[str, dict[str, Fraction]] = {}
    for unit in units:
        if unit.result is not None and unit.result.score is not None:
            by_category.setdefault(unit.category, {})[unit.code] = Fraction(unit.result.score.exact)
    rank_of = {code: rank for scores in by_category.values() for code, rank in ranks(scores).items()}
    rows = [
        OverviewUnit(
            unit_code=unit.code,
            unit_name=unit.name,
            category=unit.category,
            category_name=unit.category_name,
            reviewed={y: y in unit.years_reviewed for y in years},
            meeting_id=unit.result.meeting_id if unit.result else None,
            score=unit.result.score if unit.result else None,
            component=unit.result.component if unit.result else None,
            rank=rank_of.get(unit.code),
            overdue=overdue(unit, year),
            history_known=history_known(unit, year),
        )
        for unit in units
    ]
    return OverviewPage(
        year=year, category=category, years=years, units=rows, overdue=[row.unit_code for row in rows if row.overdue]
    )
