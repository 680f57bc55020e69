"""The feedback report (反馈报告): where a unit fell short, point by point, against its peers. Pure.

Peers are the closed meetings of the same category and year that used the same template version,
so that every point compares like with like. Averages and ranks among peers are shown only when
there are at least K of them: with fewer, a peer average would come close to naming another unit's
score.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from pydantic import BaseModel

from app.export import figure
from app.labels import verification_code
from app.schemas import Figure, FiguresPublic, UtcDateTime
from app.scoring import round_half_up

# How many of a unit's points the report singles out as its weakest.
WEAKEST = 3


class Comparison(BaseModel):
    peer_average: Figure
    rank: int  # 1 is the highest average among the peers
    of: int


class PointRow(BaseModel):
    id: str
    number: int  # 1–19 as the ballot numbers the points
    name: str
    max: str
    average: Figure
    share: str  # average / max, as a percentage rounded to 1 place
    weakest: bool
    below_peers: bool
    comparison: Comparison | None


class ItemRow(BaseModel):
    id: str
    name: str
    max: str
    average: Figure
    comparison: Comparison | None
    points: list[PointRow]


class FeedbackReport(BaseModel):
    meeting_id: int
    unit_code: str
    unit_name: str
    category: str
    year: int
    title: str
    result_version: int
    digest: str
    verification_code: str  # the digest's first 12 hex digits, as the printed report shows it
    closed_at: UtcDateTime
    score: Figure | None
    component: Figure | None
    score_comparison: Comparison | None
    peers: int
    k: int
    items: list[ItemRow]
    weakest: list[str]
    comments: list[str]


def _compare(value: Fraction, others: Sequence[Fraction]) -> Comparison:
    mean = sum(others, Fraction(0)) / len(others)
    return Comparison(peer_average=figure(mean), rank=1 + sum(1 for other in others if other > value),
                      of=len(others))


def _exact(text: str) -> Fraction:
    return Fraction(text)


def feedback_report(
    *, own: FiguresPublic, peers: Sequence[FiguresPublic], k: int, comments: Sequence[str], digest: str,
    **meta: object,
) -> FeedbackReport:
    """``peers`` includes ``own``: ranks are among all comparable meetings, the unit's own among them."""
    comparable = len(peers) >= k and own.score is not None
    point_values = {
        point.id: [_exact(p.average.exact) for f in peers for i in f.items for p in i.points if p.id == point.id]
        for item in own.items for point in item.points
    }
    item_values = {
        item.id: [_exact(i.average.exact) for f in peers for i in f.items if i.id == item.id] for item in own.items
    }
    shares = sorted(
        (_exact(point.average.exact) / Fraction(point.max), point.id) for item in own.items for point in item.points
    )
    weakest = [point_id for _, point_id in shares[:WEAKEST]] if own.score is not None else []
    items = []
    number = 0
    for item in own.items:
        points = []
        for point in item.points:
            number += 1
            value = _exact(point.average.exact)
            comparison = _compare(value, point_values[point.id]) if comparable else None
            points.append(PointRow(
                id=point.id, number=number, name=point.name, max=point.max, average=point.average,
                share=str(round_half_up(value / Fraction(point.max) * 100, 1)),
                weakest=point.id in weakest,
                below_peers=comparison is not None and value < _exact(comparison.peer_average.exact),
                comparison=comparison,
            ))
        items.append(ItemRow(
            id=item.id, name=item.name, max=item.max, average=item.average,
            comparison=_compare(_exact(item.average.exact), item_values[item.id]) if comparable else None,
            points=points,
        ))
    score_comparison = None
    if comparable and own.score is not None:
        scores = [_exact(f.score.exact) for f in peers if f.score is not None]
        score_comparison = _compare(_exact(own.score.exact), scores)
    return FeedbackReport(
        score=own.score, component=own.component, score_comparison=score_comparison,
        peers=len(peers), k=k, items=items, weakest=weakest, comments=list(comments), digest=digest,
        verification_code=verification_code(digest), **meta,
    )
