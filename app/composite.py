"""A unit's party-building grade from its three components. Pure: exact Fractions, rounded for display.

DESIGN.md: the panel's on-site score is 40% of the grade, the committee's inspections 30% and key
tasks 30%. The on-site part comes from the frozen result, never from a number the caller sends.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from app.errors import Conflict, Invalid
from app.export import figure
from app.schemas import CompositeBody, CompositePart, CompositePublic, ResultRecord

COMPONENT_MAX = Decimal(100)


def _component(name: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise Invalid("composite_component", name=name, value=text) from None
    if not value.is_finite() or not Decimal(0) <= value <= COMPONENT_MAX:
        raise Invalid("composite_component", name=name, value=text)
    return value


def _part(score: Fraction | Decimal, weight: Decimal) -> CompositePart:
    return CompositePart(score=figure(score), weight=str(weight), weighted=figure(Fraction(score) * Fraction(weight)))


def composite(body: CompositeBody, record: ResultRecord) -> CompositePublic:
    """The grade: on-site score × its weight + inspections × theirs + key tasks × theirs."""
    weights = [Decimal(body.weights.onsite), Decimal(body.weights.inspection), Decimal(body.weights.key_tasks)]
    if sum(weights) != 1:
        raise Invalid("composite_weights", total=str(sum(weights)))
    if record.score is None:
        raise Conflict("composite_no_score", unit=record.unit_code, year=record.year)
    onsite = _part(Fraction(record.score.exact), weights[0])
    inspection = _part(_component("inspection", body.inspection), weights[1])
    key_tasks = _part(_component("key_tasks", body.key_tasks), weights[2])
    grade = sum((Fraction(part.weighted.exact) for part in (onsite, inspection, key_tasks)), Fraction(0))
    return CompositePublic(
        unit_code=record.unit_code,
        year=record.year,
        meeting_id=record.meeting_id,
        result_version=record.result_version,
        digest=record.digest,
        onsite=onsite,
        inspection=inspection,
        key_tasks=key_tasks,
        grade=figure(grade),
    )
