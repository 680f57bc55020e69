"""A meeting's figures from values: its rules, its ballots' digest, what its result may show. Pure.

The store (at close and for the live tally), ``verify`` and ``recount`` all compute a meeting's
figures here, from the meeting's fields and its ballots as values, without a database row:
the same code gives the same figures wherever it runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol

from app import scoring
from app.disclosure import Breakdown, breakdown
from app.export import figures_public
from app.schemas import DistributionBin, FiguresPublic
from app.scoring import Figures, GroupSpec, Rules, ScoredBallot, canonical_json, compute, score_ballot
from app.templates import BallotTemplate


class MeetingSettings(Protocol):
    """The fields of a meeting that its figures depend on (a row, or a meeting read from a file)."""

    @property
    def groups(self) -> str: ...  # JSON list of {"key", "name", "weight"}
    @property
    def trim(self) -> int: ...
    @property
    def component_weight(self) -> str: ...
    @property
    def flagged_rule(self) -> str: ...


def group_specs(meeting: MeetingSettings) -> list[GroupSpec]:
    return [
        GroupSpec(key=g["key"], name=g["name"], weight=Decimal(g["weight"]) if g.get("weight") else None)
        for g in json.loads(meeting.groups)
    ]


def rules_of(meeting: MeetingSettings, *, k: int) -> Rules:
    return Rules(
        trim=meeting.trim,
        k=k,
        component_weight=Decimal(meeting.component_weight),
        flagged_rule="exclude" if meeting.flagged_rule == "exclude" else "count",
    )


@dataclass(frozen=True)
class StoredBallot:
    """A ballot as the box keeps it, and as an audit file gives it."""

    group: str | None
    answers: dict[str, str]
    comment: str | None


@dataclass(frozen=True)
class Subject:
    """What a result says about the unit it rates, as it stood at close."""

    unit_code: str
    unit_name: str
    category: str


DIGEST_FORMAT = "onsite-ballot/result-digest/v2"
# Result.digest_format: 1 for results frozen before 2026-12-02 (``ballot_set_digest``), 2 since.
BALLOTS_ONLY, WHOLE_RESULT = 1, 2


@dataclass(frozen=True)
class RulesRead:
    """A meeting's counting settings read back from a rules document (a result's, an audit file's)."""

    groups: str
    trim: int
    component_weight: str
    flagged_rule: str


def rules_from_document(document: dict[str, object]) -> tuple[RulesRead, int]:
    """The settings and the K of ``rules_document``'s output."""
    settings = RulesRead(
        groups=canonical_json(document["groups"]),
        trim=int(str(document["trim"])),
        component_weight=str(document["component_weight"]),
        flagged_rule=str(document["flagged_rule"]),
    )
    return settings, int(str(document["k"]))


def digest_of(
    digest_format: int,
    *,
    ballots: Sequence[StoredBallot],
    template: BallotTemplate,
    meeting: MeetingSettings,
    k: int,
    subject: Subject,
    earlier: Sequence[Breakdown] = (),
) -> str:
    """The digest a result of this format carries."""
    if digest_format == BALLOTS_ONLY:
        return ballot_set_digest(ballots)
    return result_digest(ballots=ballots, template=template, meeting=meeting, k=k, subject=subject, earlier=earlier)


def result_digest(
    *,
    ballots: Iterable[StoredBallot],
    template: BallotTemplate,
    meeting: MeetingSettings,
    k: int,
    subject: Subject,
    earlier: Sequence[Breakdown] = (),
) -> str:
    """SHA-256 of everything a result depends on, as one canonical JSON document (README, "The digest").

    The ballots (sorted by their own canonical text, so that their order tells nothing), the
    template version's whole content, the counting rules (trim, K, the component's share, the rule
    for uniform ballots, the rater groups and their weights), what the versions before this one
    showed of the groups, and the unit as the result names it. Change any of them and the digest
    changes: a recount cannot be fooled by a file whose rules were rewritten to match its figures.
    """
    document = {
        "format": DIGEST_FORMAT,
        "ballots": sorted(
            ({"group": b.group, "answers": b.answers, "comment": b.comment or ""} for b in ballots), key=canonical_json
        ),
        "template": json.loads(template.to_json()),
        "rules": rules_document(meeting, k=k),
        "earlier_versions": [
            {"counts": sorted(([key, n] for key, n in before.counts.items()), key=lambda kn: str(kn[0])),
             "shown": sorted(before.shown, key=str)}
            for before in earlier
        ],
        "unit": {"code": subject.unit_code, "name": subject.unit_name, "category": subject.category},
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def rules_document(meeting: MeetingSettings, *, k: int) -> dict[str, object]:
    """The counting rules as the digest and an audit file give them."""
    return {
        "trim": meeting.trim,
        "k": k,
        "component_weight": meeting.component_weight,
        "flagged_rule": meeting.flagged_rule,
        "groups": json.loads(meeting.groups),
    }


def ballot_set_digest(ballots: Iterable[StoredBallot]) -> str:
    """The digest of results closed before 2026-12-02 (format 1): SHA-256 over the sorted canonical
    ballots alone. Kept so that those results can still be verified; new ones use ``result_digest``."""
    canon = sorted(
        canonical_json({"group": b.group, "answers": b.answers, "comment": b.comment or ""}) for b in ballots
    )
    return hashlib.sha256(("[" + ",".join(canon) + "]").encode("utf-8")).hexdigest()


def group_counts(figures: Figures) -> dict[str | None, int]:
    """The ballots that entered the figures, per rater group; ``None`` for codes minted without one."""
    counts: dict[str | None, int] = {group.key: group.ballots for group in figures.groups}
    ungrouped = figures.ballots - figures.excluded_flagged - sum(counts.values())
    if ungrouped:
        counts[None] = ungrouped
    return counts


def disclosed(figures: Figures, earlier: Sequence[Breakdown], *, k: int) -> tuple[Figures, Breakdown]:
    """A result's figures with only the rater groups that app.disclosure lets it show apart."""
    shown = breakdown(group_counts(figures), earlier, k=k)
    groups = [group if group.key in shown.shown else replace(group, score=None) for group in figures.groups]
    return replace(figures, groups=groups), shown


def without_groups(figures: Figures) -> Figures:
    """Live figures: no rater group apart (between two steps a group could move by fewer than K)."""
    return replace(figures, groups=[replace(group, score=None) for group in figures.groups])


def figures_for(
    *,
    template: BallotTemplate,
    meeting: MeetingSettings,
    ballots: Sequence[StoredBallot],
    k: int,
    earlier: Sequence[Breakdown] = (),
) -> tuple[FiguresPublic, Breakdown]:
    """A meeting's result recounted from all its ballots: at close, for verify and for recount.

    ``earlier`` are the breakdowns of the versions published before this one (app.disclosure).
    """
    scored: list[ScoredBallot] = [score_ballot(template, b.answers, b.group) for b in ballots]
    figures = compute(template, scored, group_specs(meeting), rules_of(meeting, k=k))
    figures, shown = disclosed(figures, earlier, k=k)
    return public_figures(template, meeting, figures, scoring.distribution([b.total for b in scored])), shown


def public_figures(
    template: BallotTemplate, meeting: MeetingSettings, figures: Figures, counts: Sequence[int]
) -> FiguresPublic:
    """The one rendering of figures, whether recounted (close) or kept running (the live tally)."""
    public = figures_public(template, figures, group_specs(meeting), Decimal(meeting.component_weight))
    edges = scoring.DISTRIBUTION_EDGES
    public.distribution = [
        DistributionBin(label=f"{edges[i]}–{edges[i + 1]}", low=str(edges[i]), high=str(edges[i + 1]), count=count)
        for i, count in enumerate(counts)
    ]
    return public


def breakdown_to_json(shown: Breakdown) -> str:
    return canonical_json(
        {"counts": [[key, n] for key, n in sorted(shown.counts.items(), key=lambda kv: str(kv[0]))],
         "shown": sorted(shown.shown, key=str)}
    )


def breakdown_from_json(text: str) -> Breakdown:
    raw = json.loads(text)
    return Breakdown(counts={key: n for key, n in raw["counts"]}, shown=frozenset(raw["shown"]))
