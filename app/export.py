"""Figures as people and machines read them: rounded and exact side by side. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from app.errors import Problem
from app.models import (
    Figure,
    FiguresPublic,
    GroupFigure,
    ItemFigure,
    PointFigure,
)
from app.scoring import Figures, GroupSpec, exact, round_half_up
from app.templates import BallotTemplate


def figure(value: Fraction | Decimal) -> Figure:
    return Figure(rounded=str(round_half_up(value)), exact=exact(value))


def _plain(value: Decimal) -> str:
    return exact(value)


def figures_public(
    template: BallotTemplate,
    figures: Figures,
    groups: Sequence[GroupSpec],
    component_weight: Decimal,
    lang: str = "zh",
) -> FiguresPublic:
    """The one rendering of a meeting's figures, used by the tally, the result and the pages."""
    items = []
    for item in template.items:
        points = [
            PointFigure(
                id=point.id,
                name=point.name,
                max=_plain(point.max),
                average=figure(figures.point_averages[point.id]),
            )
            for point in item.points
            if point.id in figures.point_averages
        ]
        if item.id in figures.item_averages:
            items.append(
                ItemFigure(
                    id=item.id,
                    name=item.name,
                    max=_plain(sum((point.max for point in item.points), Decimal(0))),
                    average=figure(figures.item_averages[item.id]),
                    points=points,
                )
            )
    weights = {spec.key: spec.weight for spec in groups}
    group_figures = [
        GroupFigure(
            key=group.key,
            name=group.name,
            weight=_plain(weights[group.key]) if weights.get(group.key) is not None else None,  # type: ignore[arg-type]
            # Below K neither the score nor even the head count of a group is shown.
            ballots=group.ballots if group.score is not None else None,
            score=figure(group.score) if group.score is not None else None,
        )
        for group in figures.groups
    ]
    message = None
    if figures.status == "insufficient":
        message = Problem(
            "meeting_groups",
            {
                "error": "、".join(figures.insufficient_groups) + " 的有效票数少于 K，无法计算加权得分"
                if lang != "en"
                else ", ".join(figures.insufficient_groups) + " have fewer than K ballots; no weighted score"
            },
        ).message(lang)
    elif figures.status == "no_ballots":
        message = "尚无有效测评票" if lang != "en" else "No valid ballots yet"
    return FiguresPublic(
        ballots=figures.ballots,
        counted=figures.counted,
        dropped=figures.dropped,
        flagged=figures.flagged,
        excluded_flagged=figures.excluded_flagged,
        status=figures.status,
        message=message,
        score=figure(figures.score) if figures.score is not None else None,
        component=figure(figures.component) if figures.component is not None else None,
        component_weight=_plain(component_weight),
        total_sum=_plain(figures.total_sum),
        items=items,
        groups=group_figures,
    )
