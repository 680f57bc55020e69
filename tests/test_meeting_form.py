"""app.meeting_form: the console's meeting form and group rows, without a database or a request."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.errors import Invalid
from app.meeting_form import default_title, group_rows, meeting_body
from app.scoring import GroupSpec

FORM = {"unit_code": "JL001", "year": "2026", "date": "2026-12-03", "title": "述职评议会", "mode": "cards",
        "attendance": "35", "trim": "1", "component_weight": "0.4", "flagged_rule": "count", "template": "default"}
SPECS = [GroupSpec(key="leaders", name="班子成员", weight=None), GroupSpec(key="staff", name="党员群众代表", weight=None)]


def test_the_default_title_names_the_unit_first() -> None:
    assert default_title("省机关事务管理局", 2026) == "省机关事务管理局2026年度党建工作述职评议会"


@pytest.mark.parametrize(
    ("rows", "groups"),
    [
        ({}, None),
        ({"group_key_0": "leaders", "group_name_0": "班子成员"}, [("leaders", "班子成员", None)]),
        ({"group_name_2": "机关党委委员", "group_weight_2": "25"}, [("g3", "机关党委委员", "25")]),
        ({"group_name_6": "beyond the rows"}, None),
    ],
)
def test_group_rows_become_groups(rows: dict[str, str], groups: list[tuple[str, str, str | None]] | None) -> None:
    body = meeting_body({**FORM, **rows})
    assert (None if body.groups is None else [(g.key, g.name, g.weight) for g in body.groups]) == groups


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        ({"attendance": "0"}, [("field_reason", "attendance")]),
        ({"mode": "paper"}, [("field_reason", "mode")]),
        ({"title": "  "}, [("text_blank", "title")]),
        ({"year": "2025"}, [("meeting_date_year", "form")]),
    ],
)
def test_a_refused_form_names_its_fields(change: dict[str, str], problems: list[tuple[str, str]]) -> None:
    with pytest.raises(Invalid) as refused:
        meeting_body({**FORM, **change})
    assert [(p.code, p.params.get("field")) for p in refused.value.problems] == problems


COUNTS: dict[str | None, dict[str, int]] = {"leaders": {"issued": 3, "spent": 3, "void": 0},
                                            None: {"issued": 10, "spent": 4, "void": 1}}


@pytest.mark.parametrize(
    ("state", "shown", "spent", "ungrouped_spent"),
    [
        ("open", None, [None, None], None),
        ("closed", frozenset({"leaders", None}), [3, None], 4),
        ("closed", None, [None, None], None),
    ],
)
def test_group_rows_blank_what_may_not_be_shown_and_mark_groups_short_of_k(
    state: str, shown: frozenset[str | None] | None, spent: list[Any], ungrouped_spent: int | None
) -> None:
    rows, ungrouped = group_rows(SPECS, COUNTS, state=state, shown=shown, k=5)
    assert [(row["spec"].key, row["issued"], row["spent"], row["short"]) for row in rows] == [
        ("leaders", 3, spent[0], True), ("staff", 0, spent[1], False),
    ]
    assert ungrouped == {"issued": 10, "spent": ungrouped_spent, "void": 1}


def test_weights_stay_text_until_the_store_checks_them() -> None:
    body = meeting_body({**FORM, "group_name_0": "甲", "group_weight_0": "33.5"})
    assert body.groups is not None and body.groups[0].weight == "33.5"
    assert Decimal(body.groups[0].weight) == Decimal("33.5")
