"""Domain errors: what a user can get wrong, as values the edge turns into answers.

Every problem a user can cause has a stable ``code`` with its words in app.messages (Simplified
Chinese, the default, and English). Pure modules and the store raise these with values, never with
words; ``app.main`` maps them to HTTP answers in the reader's language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.messages import MESSAGES, Problem, reason

__all__ = ["Problem"]


class DomainError(Exception):
    """Base of every error whose message is meant for the user."""

    status = 400

    def __init__(self, error_code: str, /, *, problems: list[Problem] | None = None, **params: Any) -> None:
        self.problem = Problem(error_code, params)
        self.problems = problems or []
        super().__init__(self.problem.message("en"))

    def message(self, lang: str = "zh") -> str:
        return self.problem.message(lang)


class Invalid(DomainError):
    """The input is malformed or breaks a rule; nothing was changed."""

    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The request is well formed but the state of things forbids it (HTTP 409)."""

    status = 409


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class TooManyGuesses(DomainError):
    status = 429


class TooLarge(DomainError):
    status = 413


def invalid_with(problems: list[Problem]) -> Invalid:
    """An Invalid whose headline is the first problem and which carries them all."""
    first = problems[0]
    return Invalid(first.code, problems=problems, **first.params)


def validation_problem(error: Mapping[str, Any]) -> Problem:
    """One of pydantic's validation errors (FastAPI's, or a model's) as a Problem in our words.

    A check of ours raises ``PydanticCustomError(<catalogue key>, …)`` with the values its message
    names; it comes back as that message, about the field it concerns. Malformed JSON has words of
    its own; anything else is "the request is wrong: <field> <reason>".
    """
    location: Sequence[Any] = error.get("loc", ())
    where = ".".join(str(part) for part in location) or "(root)"
    kind = str(error.get("type", ""))
    if kind == "json_invalid":
        position = location[-1] if location and isinstance(location[-1], int) else 0
        return Problem("request_json", {"position": position + 1})
    if kind in MESSAGES:
        context = dict(error.get("ctx") or {})
        # A check over a whole body names the field inside it ("comment" in "body").
        path = context.pop("path", None)
        field = f"{where}.{path}" if path and location else (path or where)
        return Problem(kind, {**context, "field": field})
    return Problem("request_invalid", {
        "error": Problem("field_reason", {"field": where, "reason": field_reason(error)}),
    })


def field_reason(error: Mapping[str, Any]) -> Problem:
    """Why pydantic refused a value, said after the value's name: "must be at least 1"."""
    kind = str(error.get("type", ""))
    context = {key: value for key, value in dict(error.get("ctx") or {}).items() if key != "error"}
    if kind in ("literal_error", "enum") and isinstance(context.get("expected"), str):
        context["expected"] = context["expected"].replace("' or '", "', '")
    return reason(kind, {**context, "detail": error.get("msg", "")})
