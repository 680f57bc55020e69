"""Units and their categories; CSV/XLSX import (new units and updates), all rows or none; the review
years recorded from before the service; deleting a unit entered by mistake."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlmodel import Session, col

from app import text
from app.errors import Conflict, Invalid, NotFound, Problem, invalid_with
from app.imports import Existing, UnitRow, parse_units_file
from app.store.base import audit
from app.tables import AuditEvent, BallotToken, Category, Meeting, Tally, Turnout, Unit, UnitReviewYear


def categories(*, session: Session) -> list[Category]:
    return list(session.scalars(select(Category).order_by(col(Category.position))))


def _category_names(session: Session) -> dict[str, str]:
    return {category.key: category.name for category in categories(session=session)}


def _category_keys(session: Session) -> list[str]:
    return [category.key for category in categories(session=session)]


def create_unit(*, session: Session, actor: str, code: str, name: str, category: str) -> Unit:
    code, name = code.strip(), name.strip()
    keys = _category_keys(session)
    problems = []
    if not code:
        problems.append(Problem("unit_field", {"field": "code"}))
    elif text.has_control(code):
        problems.append(Problem("text_control", {"field": "code"}))
    if not name:
        problems.append(Problem("unit_field", {"field": "unit_name"}))
    elif text.has_control(name):
        problems.append(Problem("text_control", {"field": "unit_name"}))
    if category not in keys:
        problems.append(Problem("unit_unknown_category", {"category": category, "allowed": "/".join(keys)}))
    if problems:
        raise invalid_with(problems)
    if find_unit(session=session, code=code) is not None:
        raise Conflict("unit_code_taken", code=code)
    unit = Unit(code=code, name=name, category_key=category)
    session.add(unit)
    session.flush()
    audit(session=session, actor=actor, action="unit.create", detail={"code": code})
    session.commit()
    return unit


def review_years(*, session: Session, unit_ids: Iterable[int]) -> dict[int, list[int]]:
    """The review years recorded for each unit (before the service kept its meetings), ascending."""
    ids = list(unit_ids)
    found: dict[int, list[int]] = {unit_id: [] for unit_id in ids}
    if ids:
        rows = session.execute(
            select(col(UnitReviewYear.unit_id), col(UnitReviewYear.year))
            .where(col(UnitReviewYear.unit_id).in_(ids))
            .order_by(col(UnitReviewYear.year))
        ).all()
        for unit_id, year in rows:
            found[unit_id].append(year)
    return found


def _set_review_years(session: Session, unit: Unit, years: Iterable[int]) -> None:
    session.execute(delete(UnitReviewYear).where(col(UnitReviewYear.unit_id) == unit.id))
    session.add_all(UnitReviewYear(unit_id=unit.id, year=year) for year in sorted(set(years)))  # type: ignore[arg-type]


def preview_import(*, session: Session, data: bytes, categories: Sequence[str] | None = None) -> list[UnitRow]:
    """What an import would create and change (CSV or XLSX), or Invalid naming every bad row; writes nothing.

    ``categories``: the ones the importer manages; a row may neither name another nor move a unit out of one.
    """
    names = _category_names(session)
    allowed = {key: name for key, name in names.items() if categories is None or key in categories}
    units = list(session.scalars(select(Unit)))
    years = review_years(session=session, unit_ids=[unit.id for unit in units])  # type: ignore[misc]
    existing = {
        unit.code: Existing(unit.name, unit.category_key, frozenset(years[unit.id]))  # type: ignore[index]
        for unit in units
    }
    rows = parse_units_file(data, categories=allowed, existing=existing)
    foreign = [
        Problem("csv_row", {"line": row.line, "error": Problem("forbidden_category", {"category": row.before.category})
                            .message()})
        for row in rows if row.before is not None and row.before.category not in allowed
    ]
    if foreign:
        raise invalid_with(foreign)
    return rows


def update_unit(
    *, session: Session, actor: str, code: str, name: str, category: str, reviewed_years: Sequence[int] | None = None
) -> Unit:
    unit = find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    keys = _category_keys(session)
    if not name.strip():
        raise Invalid("unit_field", field="unit_name")
    text.check(name, "unit_name")
    if category not in keys:
        raise Invalid("unit_unknown_category", category=category, allowed="/".join(keys))
    before = {"name": unit.name, "category": unit.category_key}
    after = {"name": name.strip(), "category": category}
    if reviewed_years is not None:
        before["years"] = "、".join(str(y) for y in review_years(session=session, unit_ids=[unit.id])[unit.id])  # type: ignore[index,list-item]
        after["years"] = "、".join(str(y) for y in sorted(set(reviewed_years)))
        _set_review_years(session, unit, reviewed_years)
    unit.name, unit.category_key = name.strip(), category
    session.add(unit)
    audit(session=session, actor=actor, action="unit.update", detail={"code": code, "before": before, "after": after})
    session.commit()
    return unit


def find_unit(*, session: Session, code: str) -> Unit | None:
    return session.scalars(select(Unit).where(col(Unit.code) == code)).first()


def list_units(*, session: Session, category: str | None = None) -> list[Unit]:
    # In the order the categories are listed in DESIGN.md, then by code.
    query = select(Unit).join(Category).order_by(col(Category.position), col(Unit.code))
    if category:
        query = query.where(col(Unit.category_key) == category)
    return list(session.scalars(query))


@dataclass(frozen=True)
class ImportOutcome:
    created: list[Unit]
    updated: list[Unit]
    unchanged: int


def import_units(
    *, session: Session, actor: str, data: bytes, categories: Sequence[str] | None = None
) -> ImportOutcome:
    """All rows of the file, or none: a bad row raises before anything is written. New codes are
    created; known codes are updated (name, category, and review years added to those recorded).

    ``categories`` limits the rows to the categories the importer may manage.
    """
    rows = preview_import(session=session, data=data, categories=categories)
    by_code = {unit.code: unit for unit in session.scalars(select(Unit))}
    created, updated = [], []
    for row in rows:
        if row.action == "same":
            continue
        unit = by_code.get(row.code)
        if unit is None:
            unit = Unit(code=row.code, name=row.name, category_key=row.category)
            created.append(unit)
        else:
            unit.name, unit.category_key = row.name, row.category
            updated.append(unit)
        session.add(unit)
        session.flush()
        if row.new_years:
            session.add_all(UnitReviewYear(unit_id=unit.id, year=year) for year in sorted(row.new_years))  # type: ignore[arg-type]
    audit(session=session, actor=actor, action="unit.import",
          detail={"created": len(created), "updated": len(updated)})
    session.commit()
    return ImportOutcome(created, updated, len(rows) - len(created) - len(updated))


def delete_unit(*, session: Session, actor: str, code: str) -> None:
    """Delete a unit entered by mistake (or the demo unit), with its meetings that never opened and
    never had a code: nothing of a ballot, a result or a printed card goes with it."""
    unit = find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    meetings = list(session.scalars(select(Meeting).where(col(Meeting.unit_id) == unit.id)))
    ids = [meeting.id for meeting in meetings]
    codes = session.execute(
        select(func.count()).select_from(BallotToken).where(col(BallotToken.meeting_id).in_(ids))
    ).scalar_one() if ids else 0
    if codes or any(meeting.state != "draft" for meeting in meetings):
        raise Conflict("unit_in_use", code=code)
    if ids:
        # The audit log keeps its events; they no longer point at a meeting that is gone.
        session.execute(update(AuditEvent).where(col(AuditEvent.meeting_id).in_(ids)).values(meeting_id=None))
        session.execute(delete(Tally).where(col(Tally.meeting_id).in_(ids)))
        session.execute(delete(Turnout).where(col(Turnout.meeting_id).in_(ids)))
        session.execute(delete(Meeting).where(col(Meeting.id).in_(ids)))
    session.execute(delete(UnitReviewYear).where(col(UnitReviewYear.unit_id) == unit.id))
    session.delete(unit)
    audit(session=session, actor=actor, action="unit.delete",
          detail={"code": unit.code, "name": unit.name, "meetings": len(ids)})
    session.commit()
