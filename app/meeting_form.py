"""The console's meeting form and group rows, read into the domain's terms. Pure: no web, no database.

The form's numbered group rows become ``GroupIn``s and the whole form a ``MeetingCreate``, with
pydantic's complaints named by the form's fields; a meeting's codes per rater group become the rows
the meeting page shows, with the counts that may not be shown yet blanked and the groups that will
stay below K marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from app.disclosure import group_counts_visible
from app.errors import Problem, field_reason, invalid_with
from app.messages import MESSAGES
from app.schemas import GroupIn, MeetingCreate
from app.scoring import GroupSpec

# The form offers this many rater-group rows; empty ones are left out.
GROUP_ROWS = 6

Counts = Mapping[str | None, Mapping[str, int]]
NO_CODES = {"issued": 0, "spent": 0, "void": 0}


def default_title(unit_name: str, year: int | str) -> str:
    """The title a review meeting usually has; the unit's name first, since every unit's is alike."""
    return f"{unit_name}{year}年度党建工作述职评议会"


def meeting_body(form: Mapping[str, str]) -> MeetingCreate:
    """The new-meeting form as the API's body; ``Invalid`` naming the form's fields if it is not one."""
    template_id, _, version = form.get("template", "default").partition(":")
    groups = []
    for index in range(GROUP_ROWS):
        name = form.get(f"group_name_{index}", "").strip()
        # The default groups keep their keys (hidden fields); a group the organizer names gets one.
        key = form.get(f"group_key_{index}", "").strip() or (f"g{index + 1}" if name else "")
        if key or name:
            groups.append({"key": key, "name": name, "weight": form.get(f"group_weight_{index}", "").strip() or None})
    try:
        return MeetingCreate(
            unit_code=form.get("unit_code", ""),
            year=form.get("year") or 0,
            date=form.get("date") or None,
            title=form.get("title", ""),
            mode=form.get("mode", "cards"),
            attendance=form.get("attendance") or 0,
            template_id=template_id or "default",
            template_version=int(version) if version.isdigit() else None,
            groups=[GroupIn(**group) for group in groups] or None,
            trim=form.get("trim") or 0,
            component_weight=form.get("component_weight", "0.4"),
            flagged_rule=form.get("flagged_rule", "count"),
        )
    except ValidationError as exc:
        # The form's fields by their names on the page (app.messages.TERMS), not their place in a model.
        raise invalid_with([form_problem(err) for err in exc.errors()]) from None


def form_problem(err: Any) -> Problem:
    context = dict(err.get("ctx") or {})
    path = str(context.pop("path", ""))
    field = path.rsplit(".", 1)[-1] if path else str(err["loc"][-1]) if err.get("loc") else "form"
    if err.get("type") in MESSAGES:
        return Problem(err["type"], {**context, "field": field})
    return Problem("field_reason", {"field": field, "reason": field_reason(err)})


def group_rows(
    specs: Sequence[GroupSpec], counts: Counts, *, state: str, shown: frozenset[str | None] | None, k: int
) -> tuple[list[dict[str, Any]], dict[str, int | None] | None]:
    """Each rater group's codes (issued, spent, void) as the meeting page shows them, and those of
    the codes minted without a group (None if there are none)."""
    rows: list[dict[str, Any]] = []
    for spec in specs:
        entry: dict[str, int | None] = dict(counts.get(spec.key, NO_CODES))
        if not group_counts_visible(state, shown, spec.key):
            # While voting goes on, each group's count would tell the room which group just voted.
            entry["spent"] = None
        # Only a group that was given cards, but fewer than K, has a breakdown that will stay hidden.
        rows.append({"spec": spec, **entry, "short": 0 < (entry["issued"] or 0) < k})
    ungrouped: dict[str, int | None] | None = dict(counts[None]) if None in counts else None
    if ungrouped is not None and not group_counts_visible(state, shown, None):
        ungrouped["spent"] = None
    return rows, ungrouped
