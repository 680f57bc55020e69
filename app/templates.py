"""Ballot templates: their shape, their rules, and reading a rater's answers against them.

Pure: no web or database imports. A template is data (JSON); see app/data/default_template.json.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import cache, cached_property
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app import text
from app.errors import Invalid, Problem, field_reason, invalid_with
from app.messages import reason

TOTAL_POINTS = Decimal(100)
# A comment may hold this many characters. Comments on paper are a few lines; the limit also sets
# the size every sealed ballot is padded to (app.sealing), so it is kept modest.
COMMENT_MAX_CHARS = 500
# Line breaks and tabs are what a person types; other control characters (NUL among them, which
# PostgreSQL cannot store in text) are not.
COMMENT_ALLOWED_CONTROLS = frozenset("\n\r\t")
# Numbers are entered in half points: finer steps invite false precision on a phone.
NUMBER_STEP = Decimal("0.5")
ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

InputMode = Literal["grades", "numbers"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Grade(_Frozen):
    key: str = Field(pattern=r"^[A-Za-z0-9]{1,8}$")
    label: str = Field(min_length=1, max_length=20)
    label_en: str = Field(default="", max_length=40)
    fraction: Decimal

    @field_validator("fraction", mode="before")
    @classmethod
    def _exact_fraction(cls, value: object) -> object:
        # A JSON float such as 0.8 must become Decimal("0.8"), not its binary neighbour.
        return str(value) if isinstance(value, float) else value


class Point(_Frozen):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(default="", max_length=200)
    max: Decimal
    input: InputMode | None = None

    @field_validator("max", mode="before")
    @classmethod
    def _exact_max(cls, value: object) -> object:
        return str(value) if isinstance(value, float) else value


class Item(_Frozen):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(default="", max_length=200)
    points: tuple[Point, ...]


class BallotTemplate(_Frozen):
    id: str = Field(pattern=ID_PATTERN)
    version: int = Field(default=1, ge=1)
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(default="", max_length=200)
    input: InputMode = "grades"
    grades: tuple[Grade, ...] = ()
    items: tuple[Item, ...]

    # Cached: every ballot walks the points several times, and a template never changes.
    @cached_property
    def points(self) -> tuple[Point, ...]:
        return tuple(point for item in self.items for point in item.points)

    @cached_property
    def grade_scores(self) -> dict[str, dict[str, Decimal] | None]:
        """Point id -> grade key -> the score that grade earns there; None for a point scored by number."""
        return {
            point.id: {grade.key: grade.fraction * point.max for grade in self.grades}
            if self.input_of(point) == "grades"
            else None
            for point in self.points
        }

    @cached_property
    def _grade_keys_by_upper(self) -> dict[str, str]:
        return {grade.key.upper(): grade.key for grade in self.grades}

    def grade_key(self, answer: object) -> str | None:
        """The grade a rater's answer names, as the template spells its key; None if none.

        On purpose, the same for the API and the form: case and surrounding spaces do not matter
        ("a", " A " and "A" are one grade), so a template with lower-case keys is answerable by
        any client, and the form shows a sent-back answer as chosen exactly when it counts.
        """
        return self._grade_keys_by_upper.get(answer.strip().upper()) if isinstance(answer, str) else None

    @cached_property
    def grade_fractions(self) -> dict[str, Decimal] | None:
        """Grade key -> its share of a point's maximum, when every point is graded; None otherwise."""
        if any(self.input_of(point) != "grades" for point in self.points):
            return None
        return {grade.key: grade.fraction for grade in self.grades}

    @cached_property
    def _exact_grades(self) -> tuple[tuple[str, ...], frozenset[str]] | None:
        """The point ids and grade keys when every point is graded; None when some take numbers."""
        if any(self.input_of(point) != "grades" for point in self.points):
            return None
        return tuple(point.id for point in self.points), frozenset(grade.key for grade in self.grades)

    def exact_grade_answers(self, raw: Mapping[str, object]) -> dict[str, str] | None:
        """The answers as they are when they are already canonical (every point, and nothing else,
        answered with a grade key exactly as the template spells it); None otherwise. What nearly
        every phone sends: it needs none of parse_answers' work, on the path every ballot takes."""
        if self._exact_grades is None or len(raw) != len(self.points):
            return None
        ids, keys = self._exact_grades
        answers: dict[str, str] = {}
        for point_id in ids:
            value = raw.get(point_id)
            if type(value) is not str or value not in keys:
                return None
            answers[point_id] = value
        return answers

    def input_of(self, point: Point) -> InputMode:
        return point.input or self.input

    def point_ids(self) -> tuple[str, ...]:
        return tuple(point.id for point in self.points)

    def item_of_point(self) -> dict[str, str]:
        return {point.id: item.id for item in self.items for point in item.points}

    def to_json(self) -> str:
        return self.model_dump_json()


def check_template(template: BallotTemplate) -> list[Problem]:
    """The rules a template must keep beyond its shape; empty when it is sound."""
    problems: list[Problem] = []
    if not template.items:
        problems.append(Problem("template_no_items"))
    seen: set[str] = set()
    for item in template.items:
        ids = [item.id] + [point.id for point in item.points]
        for id_ in ids:
            if id_ in seen:
                problems.append(Problem("template_duplicate_id", {"id": id_}))
            seen.add(id_)
        if not item.points:
            problems.append(Problem("template_empty_item", {"item": item.id}))
    for point in template.points:
        # A maximum above 100 is left to the sum check: Decimal's % cannot take a huge quotient
        # (1E+30 % 0.5 raises DivisionImpossible) and such a point can never fit anyway.
        if point.max <= 0 or (point.max <= TOTAL_POINTS and point.max % NUMBER_STEP != 0):
            problems.append(Problem("template_max_positive", {"point": point.id, "max": point.max}))
    total = sum((point.max for point in template.points), Decimal(0))
    if template.items and total != TOTAL_POINTS:
        problems.append(Problem("template_max_sum", {"total": _plain(total)}))
    uses_grades = any(template.input_of(point) == "grades" for point in template.points)
    if uses_grades and not template.grades:
        problems.append(Problem("template_no_grades"))
    grade_keys: set[str] = set()
    for grade in template.grades:
        # Raters' grades are read regardless of case, so "A" and "a" would be the same answer.
        if grade.key.upper() in grade_keys:
            problems.append(Problem("template_duplicate_id", {"id": grade.key}))
        grade_keys.add(grade.key.upper())
        if not Decimal(0) <= grade.fraction <= Decimal(1):
            problems.append(Problem("template_grade_fraction", {"grade": grade.key, "fraction": grade.fraction}))
    return problems


def parse_template(data: Mapping[str, object] | str | bytes) -> BallotTemplate:
    """Read a template from JSON text or a decoded mapping; raise Invalid naming every problem."""
    if isinstance(data, (str, bytes)):
        try:
            # parse_float=Decimal: a number in the text keeps every digit it was written with.
            data = json.loads(data, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise invalid_with([Problem("template_invalid_json", {"line": exc.lineno, "column": exc.colno})]) from None
        except UnicodeDecodeError:
            raise invalid_with([Problem("template_not_utf8")]) from None
    where = text.first_control(data)
    if where is not None:
        raise invalid_with([Problem("template_field", {"path": where, "error": reason("control")})])
    try:
        template = BallotTemplate.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                "template_field",
                {"path": ".".join(str(part) for part in err["loc"]) or "(root)", "error": field_reason(err)},
            )
            for err in exc.errors()
        ]
        raise invalid_with(problems) from None
    problems = check_template(template)
    if problems:
        raise invalid_with(problems)
    return template


@cache
def default_template() -> BallotTemplate:
    """The template of DESIGN.md: 5 items, 19 points, 100 points, grades A–D."""
    text = resources.files("app").joinpath("data/default_template.json").read_text("utf-8")
    return parse_template(text)


# ---- answers ---------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 4.50 -> '4.5', 1E+1 -> '10'."""
    if value == 0:
        return "0"  # not "-0": one answer, one canonical form
    text = format(value.normalize(), "f")
    return text


def parse_answers(template: BallotTemplate, raw: Mapping[str, object]) -> dict[str, str]:
    """Check a rater's answers against the template and return them in canonical form.

    The canonical form maps every point id to a grade key or a plain decimal string; it is what
    the ballot box stores and what the digest covers. Raise Invalid naming every problem.
    """
    exact = template.exact_grade_answers(raw)
    return exact if exact is not None else read_answers(template, raw)


def read_answers(template: BallotTemplate, raw: Mapping[str, object]) -> dict[str, str]:
    """parse_answers without its shortcut for answers already canonical: every rule, every problem."""
    problems: list[Problem] = []
    points = {point.id: point for point in template.points}
    for point_id in raw:
        if point_id not in points:
            problems.append(Problem("ballot_unknown_point", {"point": point_id}))
    grades = {grade.key: grade for grade in template.grades}
    canonical: dict[str, str] = {}
    for point in template.points:
        if point.id not in raw or raw[point.id] in (None, ""):
            problems.append(Problem("ballot_missing_point", {"point": point.id}))
            continue
        value = raw[point.id]
        if template.input_of(point) == "grades":
            key = template.grade_key(value)
            if key is None:
                problems.append(
                    Problem(
                        "ballot_unknown_grade",
                        {"point": point.id, "grade": value, "allowed": "/".join(grades)},
                    )
                )
                continue
            canonical[point.id] = key
        else:
            number = _to_decimal(value)
            if number is None:
                problems.append(Problem("ballot_not_number", {"point": point.id, "value": value}))
            elif not Decimal(0) <= number <= point.max:
                problems.append(
                    Problem(
                        "ballot_number_range",
                        {"point": point.id, "max": _plain(point.max), "value": value},
                    )
                )
            elif number % NUMBER_STEP != 0:
                problems.append(Problem("ballot_number_step", {"point": point.id, "value": value}))
            else:
                canonical[point.id] = _plain(number)
    if problems:
        raise invalid_with(problems)
    return canonical


def read_comment(raw: str | None) -> str | None:
    """A rater's comment as the box keeps it: trimmed, None when empty. Raise Invalid when it is too
    long or holds control characters, so that both databases keep exactly the same text."""
    comment = (raw or "").strip()
    if len(comment) > COMMENT_MAX_CHARS:
        raise Invalid("ballot_comment_too_long", max=COMMENT_MAX_CHARS, length=len(comment))
    if any(
        (unicodedata.category(ch) == "Cc" and ch not in COMMENT_ALLOWED_CONTROLS) or unicodedata.category(ch) == "Cs"
        for ch in comment
    ):
        raise Invalid("ballot_comment_control")
    return comment or None


def _to_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, (int, str)):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def point_scores(template: BallotTemplate, canonical: Mapping[str, str]) -> dict[str, Decimal]:
    """The score each point earns from canonical answers: grade fraction × maximum, or the number."""
    return {
        point_id: by_grade[canonical[point_id]] if by_grade is not None else Decimal(canonical[point_id])
        for point_id, by_grade in template.grade_scores.items()
    }
