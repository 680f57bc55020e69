"""app.figures: the result digest covers everything a result depends on, and only that."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import pytest

from app.disclosure import Breakdown
from app.figures import DIGEST_FORMAT, StoredBallot, Subject, result_digest
from app.templates import BallotTemplate, default_template


@dataclass(frozen=True)
class Settings:
    groups: str = '[{"key":"leaders","name":"班子成员","weight":null}]'
    trim: int = 1
    component_weight: str = "0.4"
    flagged_rule: str = "count"


ALL_A = {f"p{i:02d}": "A" for i in range(1, 20)}
BALLOTS = [StoredBallot("leaders", ALL_A, "很好"), StoredBallot("leaders", {**ALL_A, "p01": "B"}, None)]
SUBJECT = Subject("JL001", "省直机关事务管理局", "party_gov")


def digest(**changes: Any) -> str:
    arguments: dict[str, Any] = dict(
        ballots=BALLOTS, template=default_template(), meeting=Settings(), k=5, subject=SUBJECT, earlier=()
    )
    arguments.update(changes)
    return result_digest(**arguments)


def renamed_point(template: BallotTemplate) -> BallotTemplate:
    data = json.loads(template.to_json())
    data["items"][0]["points"][0]["name"] = "履行第一责任人职责（改）"
    return BallotTemplate.model_validate(data)


def test_the_digest_is_the_readmes_definition_computed_by_hand() -> None:
    document = {
        "format": DIGEST_FORMAT,
        "ballots": sorted(
            [{"group": "leaders", "answers": ALL_A, "comment": "很好"},
             {"group": "leaders", "answers": {**ALL_A, "p01": "B"}, "comment": ""}],
            key=lambda b: json.dumps(b, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        ),
        "template": json.loads(default_template().to_json()),
        "rules": {"trim": 1, "k": 5, "component_weight": "0.4", "flagged_rule": "count",
                  "groups": [{"key": "leaders", "name": "班子成员", "weight": None}]},
        "earlier_versions": [],
        "unit": {"code": "JL001", "name": "省直机关事务管理局", "category": "party_gov"},
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest() == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_order_of_the_ballots_does_not_matter() -> None:
    assert digest(ballots=BALLOTS[::-1]) == digest()


@pytest.mark.parametrize(
    "changes",
    [
        {"meeting": Settings(trim=0)},
        {"meeting": Settings(component_weight="0.3")},
        {"meeting": Settings(flagged_rule="exclude")},
        {"meeting": Settings(groups='[{"key":"leaders","name":"班子成员","weight":"100"}]')},
        {"k": 6},
        {"template": renamed_point(default_template())},
        {"ballots": [BALLOTS[0], replace(BALLOTS[1], answers={**ALL_A, "p01": "C"})]},
        {"ballots": [BALLOTS[0], replace(BALLOTS[1], comment="x")]},
        {"ballots": [BALLOTS[0], replace(BALLOTS[1], group=None)]},
        {"ballots": BALLOTS[:1]},
        {"subject": Subject("JL001", "省机关事务管理局", "party_gov")},
        {"subject": Subject("JL001", "省直机关事务管理局", "central")},
        {"earlier": [Breakdown({"leaders": 2}, frozenset())]},
    ],
    ids=["trim", "component", "flagged-rule", "weights", "k", "template", "answer", "comment", "group",
         "one-ballot-less", "unit-name", "category", "earlier-version"],
)
def test_everything_the_result_depends_on_changes_the_digest(changes: dict[str, Any]) -> None:
    assert digest(**changes) != digest()
