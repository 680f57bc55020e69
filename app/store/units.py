"""Units and their categories; CSV/XLSX import, all rows or none."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel import Session, col

from app import text
from app.errors import Conflict, Invalid, NotFound, Problem, invalid_with
from app.imports import UnitRow, parse_units_file
from app.models import (
    Category,
    Unit,
)
from app.store.base import audit


def categories(*, session: Session) -> list[Category]:
    return list(session.scalars(select(Category).order_by(col(Category.position))))


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


def preview_import(*, session: Session, data: bytes, categories: Sequence[str] | None = None) -> list[UnitRow]:
    """What an import would add (CSV or XLSX), or Invalid naming every bad row; writes nothing."""
    taken = set(session.scalars(select(col(Unit.code))))
    allowed = _category_keys(session) if categories is None else list(categories)
    return parse_units_file(data, categories=allowed, taken_codes=taken)


def update_unit(*, session: Session, actor: str, code: str, name: str, category: str) -> Unit:
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
    unit.name, unit.category_key = name.strip(), category
    session.add(unit)
    audit(
        session=session,
        actor=actor,
        action="unit.update",
        detail={"code": code, "before": before, "after": {"name": unit.name, "category": category}},
    )
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


def import_units(*, session: Session, actor: str, data: bytes, categories: Sequence[str] | None = None) -> list[Unit]:
    """All rows of the CSV, or none: a bad row raises before anything is written.

    ``categories`` limits the rows to the categories the importer may manage.
    """
    rows = preview_import(session=session, data=data, categories=categories)
    units = [Unit(code=row.code, name=row.name, category_key=row.category) for row in rows]
    session.add_all(units)
    audit(session=session, actor=actor, action="unit.import", detail={"count": len(units)})
    session.commit()
    return units
