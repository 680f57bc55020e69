"""The incremental tally gives exactly the figures of a full recount, whatever the ballots."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings, strategies as st

from app.scoring import GroupSpec, Rules, compute, score_ballot
from app.tally import MeetingTally, Snapshot
from app.templates import default_template

TEMPLATE = default_template()
POINTS = TEMPLATE.point_ids()
GROUP_KEYS = ("a", "b", "c")
UNWEIGHTED = [GroupSpec(key, key.upper()) for key in GROUP_KEYS]
WEIGHTED = [GroupSpec("a", "A", Decimal(50)), GroupSpec("b", "B", Decimal("30")), GroupSpec("c", "C", Decimal(20))]

ballot = st.tuples(
    st.sampled_from(GROUP_KEYS),
    # few distinct patterns, so that equal totals and identical ballots (ties) are common
    st.lists(st.sampled_from("ABCD"), min_size=1, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(
    ballots=st.lists(ballot, max_size=40),
    trim=st.integers(0, 2),
    k=st.integers(1, 5),
    exclude=st.booleans(),
    weighted=st.booleans(),
    reload_every=st.integers(1, 7),
)
def test_incremental_figures_equal_a_full_recount(
    ballots: list[tuple[str, list[str]]], trim: int, k: int, exclude: bool, weighted: bool, reload_every: int
) -> None:
    rules = Rules(trim=trim, k=k, flagged_rule="exclude" if exclude else "count")
    groups = WEIGHTED if weighted else UNWEIGHTED
    scored = [
        score_ballot(TEMPLATE, {p: pattern[i % len(pattern)] for i, p in enumerate(POINTS)}, group)
        for group, pattern in ballots
    ]
    tally = MeetingTally()
    for n, one in enumerate(scored, start=1):
        tally.add(one, rules)
        if n % reload_every == 0:  # as the store does: the state goes to the database and back
            tally = MeetingTally.from_json(tally.to_json())
        expected = compute(TEMPLATE, scored[:n], groups, rules)
        assert tally.figures(TEMPLATE, groups, rules) == expected
        # What a step of K publishes: the sums alone, through the database and back.
        published = Snapshot.from_json(tally.snapshot(TEMPLATE, rules).to_json())
        assert published.figures(TEMPLATE, groups, rules) == expected
        assert published.distribution() == tally.distribution()


def test_a_hand_checked_case() -> None:
    # totals 100 (all A), 80 (all B), 50 (all C), 0 (all D), 80, 100: six ballots, trim 1
    # -> drop one 100 and the 0 -> (100 + 80 + 80 + 50) / 4 = 77.5
    rules = Rules(trim=1, k=5)
    tally = MeetingTally()
    for grade in "ABCDBA":
        tally.add(score_ballot(TEMPLATE, dict.fromkeys(POINTS, grade), "a"), rules)
    figures = tally.figures(TEMPLATE, UNWEIGHTED, rules)
    assert (figures.score, figures.counted, figures.dropped, figures.flagged) == (Decimal("77.5"), 4, 2, 6)
    assert tally.distribution() == [2, 0, 0, 2, 2]


def test_the_published_sums_hold_no_single_ballot_and_survive_an_ungrouped_meeting() -> None:
    rules = Rules(trim=1, k=5)
    tally = MeetingTally()
    for pattern in ("A", "B", "C", "D", "AB", "CD", "AD"):
        tally.add(score_ballot(TEMPLATE, {p: pattern[i % len(pattern)] for i, p in enumerate(POINTS)}, None), rules)
    text = tally.snapshot(TEMPLATE, rules).to_json()
    assert '"canonical"' not in text and '"highest"' not in text  # the running tally's trimmed ballots
    published = Snapshot.from_json(text)
    assert published.ballots == 7 and published.eligible == {None: 7}
    assert published.together.count == 5 and published.together.dropped == 2  # one highest, one lowest
    assert published.by_group[None] == published.together
