"""app.scoring: hand-computed meetings, exact rounding, and properties that must always hold.

Ballots on the default template are written one grade per item ("ABCDA"), optionally with
per-point overrides. Every item is worth 20, so an item answered all A/B/C/D gives 20/16/10/0,
and most totals below are sums of five such numbers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from app.scoring import (
    Figures,
    GroupSpec,
    Rules,
    ScoredBallot,
    compute,
    distribution,
    exact,
    round_half_up,
    score_ballot,
)
from app.templates import default_template, parse_template

T = default_template()
POINT_IDS = T.point_ids()
PROPERTY = settings(max_examples=100, deadline=None)


def by_items(grades: str, **overrides: str) -> dict[str, str]:
    """Answers with one grade per item (five letters), then single points changed."""
    answers = {point.id: grade for item, grade in zip(T.items, grades, strict=True) for point in item.points}
    assert set(overrides) <= set(answers)
    answers.update(overrides)
    return answers


def ballot(grades: str, group: str | None = None, **overrides: str) -> ScoredBallot:
    return score_ballot(T, by_items(grades, **overrides), group)


def ballots(*specs: str, group: str | None = None) -> list[ScoredBallot]:
    return [ballot(spec, group) for spec in specs]


def run(
    items: Sequence[ScoredBallot], groups: Sequence[GroupSpec] = (), **rules: object
) -> Figures:
    return compute(T, items, groups, Rules(**rules))  # type: ignore[arg-type]


# ---- one ballot ---------------------------------------------------------------------------------

ALTERNATING = {pid: "A" if i % 2 == 0 else "D" for i, pid in enumerate(POINT_IDS)}


@pytest.mark.parametrize(
    ("answers", "total", "flagged"),
    [
        (by_items("AAAAA"), "100", True),  # every point at its maximum
        (by_items("BBBBB"), "80", True),  # 0.8 x 100
        (by_items("CCCCC"), "50", True),  # 0.5 x 100
        (by_items("DDDDD"), "0", True),
        (by_items("ABCDA"), "66", False),  # 20 + 16 + 10 + 0 + 20
        (by_items("AAAAB"), "96", False),  # 80 + 16
        (by_items("AAABB"), "92", False),  # 60 + 32
        (by_items("AAAAC"), "90", False),  # 80 + 10
        (by_items("ABBBB"), "84", False),  # 20 + 64
        (by_items("AAAAD"), "80", False),  # 80 + 0
        (by_items("AACCC"), "70", False),  # 40 + 30
        (by_items("ACCCC"), "60", False),  # 20 + 40
        (by_items("AADDC"), "50", False),  # 20 + 20 + 0 + 0 + 10
        (by_items("AADDD"), "40", False),  # 20 + 20
        (by_items("BBBBB", p01="A"), "81.2", False),  # 80 + 6 x (1 - 0.8)
        (by_items("AAAAA", p19="D"), "94", False),  # 100 - 6
        (by_items("CCCCC", p17="B", p18="A"), "55.6", False),  # 50 + 7 x 0.3 + 7 x 0.5
        (by_items("BBBBB", p02="A", p03="C"), "79.5", False),  # 80 + 5 x 0.2 - 5 x 0.3
        # A on p01, p03, …, p19: 6+5+6+4+4+5+5+5+7+6 = 53; the D points give nothing
        (ALTERNATING, "53", False),
    ],
)
def test_ballot_total(answers: dict[str, str], total: str, flagged: bool) -> None:
    scored = score_ballot(T, answers, None)
    assert scored.total == Decimal(total)
    assert sum(scored.points.values(), Decimal(0)) == Decimal(total)
    assert scored.flagged is flagged


def test_ballot_points_are_grade_fraction_times_maximum() -> None:
    scored = ballot("ABCDA")
    # item i1 A: 6 5 5 4; i2 B: 0.8 x (6 6 4 4); i3 C: 0.5 x (4 6 5 5); i4 D: 0; i5 A: 7 7 6
    expected = ["6", "5", "5", "4", "4.8", "4.8", "3.2", "3.2", "2", "3", "2.5", "2.5",
                "0", "0", "0", "0", "7", "7", "6"]  # fmt: skip
    assert scored.points == {pid: Decimal(value) for pid, value in zip(POINT_IDS, expected, strict=True)}
    assert scored.group is None


NUMBERS = parse_template({**T.model_dump(mode="json"), "id": "numbers", "input": "numbers"})


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        ({p.id: str(p.max) for p in NUMBERS.points}, True),  # full marks everywhere
        ({p.id: str(p.max / 2) for p in NUMBERS.points}, True),  # half of every maximum: 3, 2.5, …
        ({p.id: "4" for p in NUMBERS.points}, False),  # same number, different shares (4/6, 4/5, 4/4)
        ({p.id: "0" for p in NUMBERS.points}, True),
    ],
)
def test_numbers_ballot_flagged_by_share_of_maximum(values: dict[str, str], flagged: bool) -> None:
    scored = score_ballot(NUMBERS, values, None)
    assert scored.flagged is flagged
    assert scored.total == sum((Decimal(v) for v in values.values()), Decimal(0))


def test_single_point_template_is_never_flagged() -> None:
    one = parse_template(
        {"id": "one", "name": "一项", "grades": [{"key": "A", "label": "好", "fraction": "1"}],
         "items": [{"id": "i1", "name": "全部", "points": [{"id": "p1", "name": "总体", "max": "100"}]}]}
    )
    assert score_ballot(one, {"p1": "A"}, None).flagged is False


# ---- unweighted meetings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "trim", "score", "counted", "dropped", "total_sum"),
    [
        # totals 100, 90, 80, 70, 60: five ballots are not "more than 5" -> no trim -> 400/5 = 80
        (["AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC"], 1, Fraction(80), 5, 0, "400"),
        # totals 100, 90, 80, 70, 60, 50 -> drop 100 and 50 -> (90+80+70+60)/4 = 75
        (["AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC", "AADDC"], 1, Fraction(75), 4, 2, "300"),
        # totals 100, 96, 92, 90, 84, 0 -> drop 100 and 0 -> (96+92+90+84)/4 = 362/4 = 90.5
        (["AAAAA", "AAAAB", "AAABB", "AAAAC", "ABBBB", "DDDDD"], 1, Fraction(181, 2), 4, 2, "362"),
        # the same with trim=0: 462/6 = 77
        (["AAAAA", "AAAAB", "AAABB", "AAAAC", "ABBBB", "DDDDD"], 0, Fraction(77), 6, 0, "462"),
        # totals 100, 96, 96, 96, 92, 90, 90, 0 -> drop 100 and 0 -> (3x96 + 92 + 2x90)/6 = 560/6 = 280/3
        (["AAAAA", "AAAAB", "AAAAB", "AAAAB", "AAABB", "AAAAC", "AAAAC", "DDDDD"], 1,
         Fraction(280, 3), 6, 2, "560"),
        # trim=2, totals 100, 96, 92, 90, 84, 80, 0 -> drop 100, 96 and 0, 80 -> (92+90+84)/3 = 266/3
        (["AAAAA", "AAAAB", "AAABB", "AAAAC", "ABBBB", "AAAAD", "DDDDD"], 2, Fraction(266, 3), 3, 4, "266"),
        # trim=2, totals 100, 90, 80, 70, 60, 50 -> drop 100, 90 and 60, 50 -> (80+70)/2 = 75
        (["AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC", "AADDC"], 2, Fraction(75), 2, 4, "150"),
        # trim=2 with five ballots: no trim -> (100+90+80+70+60)/5 = 80
        (["AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC"], 2, Fraction(80), 5, 0, "400"),
    ],
)
def test_trimmed_mean(
    specs: list[str], trim: int, score: Fraction, counted: int, dropped: int, total_sum: str
) -> None:
    figures = run(ballots(*specs), trim=trim)
    assert figures.status == "ok"
    assert figures.ballots == len(specs)
    assert figures.score == score
    assert figures.counted == counted
    assert figures.dropped == dropped
    assert figures.total_sum == Decimal(total_sum)
    assert figures.component == score * Fraction(2, 5)
    assert sum(figures.point_averages.values()) == score
    assert sum(figures.item_averages.values()) == score


def test_280_over_3_displayed_and_exported() -> None:
    # 560/6 = 280/3 = 93.333…; component 280/3 x 2/5 = 112/3 = 37.333…
    figures = run(ballots("AAAAA", "AAAAB", "AAAAB", "AAAAB", "AAABB", "AAAAC", "AAAAC", "DDDDD"))
    assert figures.score is not None and figures.component is not None
    assert (exact(figures.score), str(round_half_up(figures.score))) == ("280/3", "93.33")
    assert (exact(figures.component), str(round_half_up(figures.component))) == ("112/3", "37.33")


def test_no_ballots() -> None:
    figures = run([])
    assert (figures.status, figures.score, figures.component) == ("no_ballots", None, None)
    assert (figures.ballots, figures.counted, figures.dropped, figures.total_sum) == (0, 0, 0, Decimal(0))
    assert figures.point_averages == {}


def test_point_and_item_averages_by_hand() -> None:
    # totals 100, 90, 80, 70, 60, 50 -> drop AAAAA (100) and AADDC (50); kept AAAAC, AAAAD, AACCC, ACCCC
    figures = run(ballots("AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC", "AADDC"))
    # i1: A, A, A, A -> 20;  i2: A, A, A, C -> (20+20+20+10)/4 = 35/2
    # i3: A, A, C, C -> 60/4 = 15;  i4: A, A, C, C -> 15;  i5: C, D, C, C -> 30/4 = 15/2
    assert figures.item_averages == {
        "i1": Fraction(20), "i2": Fraction(35, 2), "i3": Fraction(15), "i4": Fraction(15), "i5": Fraction(15, 2),
    }
    # 20 + 17.5 + 15 + 15 + 7.5 = 75
    assert sum(figures.item_averages.values()) == figures.score == 75
    # p17 (max 7): C, D, C, C -> (3.5 + 0 + 3.5 + 3.5)/4 = 10.5/4 = 21/8
    assert figures.point_averages["p17"] == Fraction(21, 8)


# ---- ties ---------------------------------------------------------------------------------------

# Both total 79.5 (80 + 5 x 0.2 - 5 x 0.3) but answer p02/p03 the other way round.
# In canonical JSON "p02":"A" sorts before "p02":"C", so X orders below Y among equal totals.
X = by_items("BBBBB", p02="A", p03="C")
Y = by_items("BBBBB", p02="C", p03="A")


def test_tie_at_the_top_drops_the_same_ballot_in_any_order() -> None:
    # totals 79.5 (X), 79.5 (Y), 70, 60, 50, 40 -> drop one 79.5 (Y, the later by content) and 40
    # kept X, 70, 60, 50 -> 259.5/4 = 64.875
    others = ballots("AACCC", "ACCCC", "AADDC", "AADDD")
    tied = [score_ballot(T, X, None), score_ballot(T, Y, None)]
    orders = [tied + others, others + tied[::-1], [others[2], tied[1], others[0], tied[0], others[3], others[1]]]
    results = [run(order) for order in orders]
    assert results[0] == results[1] == results[2]
    figures = results[0]
    assert figures.score == Fraction("64.875")
    assert str(round_half_up(Fraction("64.875"))) == "64.88"
    # X kept: p02 = (5 + 5 + 5 + 5)/4 = 5; p03 = (2.5 + 5 + 5 + 5)/4 = 35/8
    # (had Y been kept it would be p02 = 35/8, p03 = 5)
    assert figures.point_averages["p02"] == Fraction(5)
    assert figures.point_averages["p03"] == Fraction(35, 8)
    assert sum(figures.point_averages.values()) == figures.score


def test_tie_at_the_bottom_drops_the_same_ballot_in_any_order() -> None:
    # totals 100, 96, 92, 90, 79.5 (X), 79.5 (Y) -> drop 100 and X (the earlier by content)
    # kept Y, 96, 92, 90 -> (79.5 + 96 + 92 + 90)/4 = 357.5/4 = 89.375
    others = ballots("AAAAA", "AAAAB", "AAABB", "AAAAC")
    tied = [score_ballot(T, X, None), score_ballot(T, Y, None)]
    first, second = run(tied + others), run(others[::-1] + tied[::-1])
    assert first == second
    assert first.score == Fraction("89.375")
    # Y kept: p02 = (2.5 + 5 + 5 + 5)/4 = 35/8; p03 = (5 + 5 + 5 + 5)/4 = 5
    assert first.point_averages["p02"] == Fraction(35, 8)
    assert first.point_averages["p03"] == Fraction(5)
    assert sum(first.point_averages.values()) == first.score


# ---- flagged ballots -----------------------------------------------------------------------------

# totals 96, 92, 90, 84, 80 (all B, flagged), 50 (all C, flagged), 60
FLAG_SPECS = ("AAAAB", "AAABB", "AAAAC", "ABBBB", "BBBBB", "CCCCC", "ACCCC")


def test_flagged_ballots_counted_by_default() -> None:
    # 50, 60, 80, 84, 90, 92, 96 -> drop 50 and 96 -> (60+80+84+90+92)/5 = 406/5 = 81.2
    figures = run(ballots(*FLAG_SPECS))
    assert (figures.ballots, figures.flagged, figures.excluded_flagged) == (7, 2, 0)
    assert (figures.counted, figures.dropped) == (5, 2)
    assert figures.score == Fraction("81.2")


def test_flagged_ballots_excluded_by_rule() -> None:
    # without the all-B and all-C ballots five remain: 96, 92, 90, 84, 60 -> no trim -> 422/5 = 84.4
    figures = run(ballots(*FLAG_SPECS), flagged_rule="exclude")
    assert (figures.ballots, figures.flagged, figures.excluded_flagged) == (7, 2, 2)
    assert (figures.counted, figures.dropped) == (5, 0)
    assert figures.score == Fraction("84.4")
    assert figures.total_sum == Decimal(422)


def test_only_flagged_ballots_excluded_leaves_no_ballots() -> None:
    figures = run(ballots("AAAAA", "DDDDD"), flagged_rule="exclude")
    assert (figures.status, figures.score, figures.ballots, figures.excluded_flagged) == ("no_ballots", None, 2, 2)


# ---- rater groups --------------------------------------------------------------------------------

LEAD = ballots("AAAAA", "AAAAB", "AAABB", "AAAAC", "ABBBB", group="lead")  # 462/5 = 92.4
COMMITTEE = ballots(*["AAAAC"] * 5, group="committee")  # 90
BRANCH = ballots(*["ABBBB"] * 5, group="branch")  # 84
STAFF = ballots("AACCC", "ACCCC", "ACCCC", "AADDC", "ACCCC", group="staff")  # 300/5 = 60
EVERYONE = LEAD + COMMITTEE + BRANCH + STAFF


def specs(*weights: str | None) -> list[GroupSpec]:
    keys = ("lead", "committee", "branch", "staff")
    names = ("党组班子成员", "机关党委委员", "基层党组织书记", "党员群众代表")
    return [
        GroupSpec(key, name, None if weight is None else Decimal(weight))
        for key, name, weight in zip(keys, names, weights, strict=True)
    ]


def group_scores(figures: Figures) -> dict[str, Fraction | None]:
    return {group.key: group.score for group in figures.groups}


@pytest.mark.parametrize(
    ("weights", "score", "component"),
    [
        # (92.4 + 90 + 84 + 60)/4 = 326.4/4 = 81.6; x 0.4 = 32.64
        (("25", "25", "25", "25"), Fraction("81.6"), "32.64"),
        # 0.4 x 92.4 + 0.3 x 90 + 0.2 x 84 + 0.1 x 60 = 36.96 + 27 + 16.8 + 6 = 86.76; x 0.4 = 34.704
        (("40", "30", "20", "10"), Fraction("86.76"), "34.704"),
        # 0.1 x 92.4 + 0.2 x 90 + 0.3 x 84 + 0.4 x 60 = 9.24 + 18 + 25.2 + 24 = 76.44; x 0.4 = 30.576
        (("10", "20", "30", "40"), Fraction("76.44"), "30.576"),
    ],
)
def test_weighted_score(weights: tuple[str, ...], score: Fraction, component: str) -> None:
    figures = run(EVERYONE, specs(*weights))
    assert figures.status == "ok"
    assert figures.score == score
    assert figures.component == Fraction(component)
    assert group_scores(figures) == {"lead": Fraction("92.4"), "committee": 90, "branch": 84, "staff": 60}
    assert (figures.counted, figures.dropped, figures.total_sum) == (20, 0, Decimal(1632))
    assert sum(figures.point_averages.values()) == score
    assert sum(figures.item_averages.values()) == score


def test_weighted_component_rounds_half_up() -> None:
    figures = run(EVERYONE, specs("40", "30", "20", "10"))
    assert figures.component is not None
    assert (exact(figures.component), str(round_half_up(figures.component))) == ("34.704", "34.70")


def test_weighted_groups_are_trimmed_inside() -> None:
    # lead gets a sixth ballot, all D: 100, 96, 92, 90, 84, 0 -> drop 100 and 0 -> 362/4 = 90.5
    # (90.5 + 90 + 84 + 60)/4 = 324.5/4 = 81.125 -> displayed 81.13
    lead = [*LEAD, ballot("DDDDD", "lead")]
    figures = run(lead + COMMITTEE + BRANCH + STAFF, specs("25", "25", "25", "25"))
    assert figures.score == Fraction("81.125")
    assert str(round_half_up(Fraction("81.125"))) == "81.13"
    assert group_scores(figures)["lead"] == Fraction("90.5")
    # counted 4 + 5 + 5 + 5, dropped 2, kept totals 362 + 450 + 420 + 300 = 1532
    assert (figures.ballots, figures.counted, figures.dropped, figures.total_sum) == (21, 19, 2, Decimal(1532))
    assert sum(figures.point_averages.values()) == figures.score


def test_unweighted_groups_shown_but_score_is_over_everyone() -> None:
    # all 20 totals sum to 462 + 450 + 420 + 300 = 1632; drop 100 and 50 -> 1482/18 = 247/3
    figures = run(EVERYONE, specs(None, None, None, None))
    assert figures.score == Fraction(247, 3)
    assert exact(Fraction(247, 3)) == "247/3"
    assert str(round_half_up(Fraction(247, 3))) == "82.33"
    assert group_scores(figures) == {"lead": Fraction("92.4"), "committee": 90, "branch": 84, "staff": 60}


def test_weighted_group_below_k_is_insufficient() -> None:
    figures = run(LEAD + COMMITTEE + BRANCH + STAFF[:4], specs("40", "30", "20", "10"))
    assert (figures.status, figures.score, figures.component) == ("insufficient", None, None)
    assert figures.insufficient_groups == ["staff"]
    assert group_scores(figures) == {"lead": Fraction("92.4"), "committee": 90, "branch": 84, "staff": None}
    assert [group.ballots for group in figures.groups] == [5, 5, 5, 4]
    assert figures.point_averages == {}


def test_every_short_group_is_named() -> None:
    figures = run(LEAD + COMMITTEE[:1] + BRANCH + STAFF[:4], specs("25", "25", "25", "25"))
    assert figures.status == "insufficient"
    assert figures.insufficient_groups == ["committee", "staff"]


def test_k_is_configurable() -> None:
    # with k = 4 the four staff ballots suffice: 70, 60, 60, 50 -> 240/4 = 60
    # 0.4 x 92.4 + 0.3 x 90 + 0.2 x 84 + 0.1 x 60 = 86.76 as before
    figures = run(LEAD + COMMITTEE + BRANCH + STAFF[:4], specs("40", "30", "20", "10"), k=4)
    assert figures.status == "ok"
    assert figures.score == Fraction("86.76")


def test_excluded_flagged_ballots_can_make_a_group_short() -> None:
    # branch answers all B five times: counted -> 80; excluded -> branch has none left
    branch = ballots(*["BBBBB"] * 5, group="branch")
    counted = run(LEAD + COMMITTEE + branch + STAFF, specs("25", "25", "25", "25"))
    # (92.4 + 90 + 80 + 60)/4 = 322.4/4 = 80.6
    assert counted.score == Fraction("80.6")
    # excluded: lead loses its all-A ballot (4 left) and branch all five (0 left): both below k = 5
    excluded = run(LEAD + COMMITTEE + branch + STAFF, specs("25", "25", "25", "25"), flagged_rule="exclude")
    assert (excluded.status, excluded.insufficient_groups, excluded.excluded_flagged) == (
        "insufficient", ["lead", "branch"], 6,
    )
    assert [(group.ballots, group.score) for group in excluded.groups] == [(4, None), (5, 90), (0, None), (5, 60)]


def test_unweighted_group_below_k_has_no_score() -> None:
    # 19 ballots: 1632 - 60 = 1572; drop 100 and 50 -> 1422/17
    figures = run(LEAD + COMMITTEE + BRANCH + STAFF[:4], specs(None, None, None, None))
    assert figures.status == "ok"
    assert figures.score == Fraction(1422, 17)
    assert group_scores(figures) == {"lead": Fraction("92.4"), "committee": 90, "branch": 84, "staff": None}


# ---- component -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs_", "weight", "component"),
    [
        (["AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC", "AADDC"], "0.4", Fraction(30)),  # 75 x 0.4
        (["AAAAA", "AAAAC", "AAAAD", "AACCC", "ACCCC", "AADDC"], "0.3", Fraction("22.5")),  # 75 x 0.3
        (["AAAAA", "AAAAB", "AAAAB", "AAAAB", "AAABB", "AAAAC", "AAAAC", "DDDDD"], "0.4",
         Fraction(112, 3)),  # 280/3 x 2/5
        (["AAAAA", "AAAAB", "AAAAB", "AAAAB", "AAABB", "AAAAC", "AAAAC", "DDDDD"], "0.3",
         Fraction(28)),  # 280/3 x 3/10
        (["ABCDA"] * 5, "1", Fraction(66)),
    ],
)
def test_component(specs_: list[str], weight: str, component: Fraction) -> None:
    assert run(ballots(*specs_), component_weight=Decimal(weight)).component == component


# ---- distribution of totals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("totals", "counts"),
    [
        ([], [0, 0, 0, 0, 0]),
        # [0, 60): 0, 59.5 | [60, 70): 60, 69.5 | [70, 80): 70 | [80, 90): 80, 89.5 | [90, 100]: 90, 100
        (["0", "59.5", "60", "69.5", "70", "80", "89.5", "90", "100"], [2, 2, 1, 2, 2]),
        (["79.99", "80"], [0, 0, 1, 1, 0]),  # 80 opens the next band
        (["100", "100", "100"], [0, 0, 0, 0, 3]),  # the last band is closed at 100
    ],
)
def test_distribution(totals: list[str], counts: list[int]) -> None:
    assert distribution([Decimal(total) for total in totals]) == counts


# ---- rounding and exact text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (Decimal("93.125"), 2, "93.13"),  # exactly half -> up
        (Decimal("93.124999"), 2, "93.12"),
        (Fraction(280, 3), 2, "93.33"),  # 93.333…
        (Fraction(2, 3), 2, "0.67"),
        (Decimal("0.005"), 2, "0.01"),
        (Decimal("1.005"), 2, "1.01"),  # a float 1.005 is 1.00499… and would give 1.00
        (Fraction(1, 200), 2, "0.01"),  # 0.005 as a fraction
        (Fraction(81125, 1000), 2, "81.13"),
        (Fraction(1, 3), 2, "0.33"),
        (Decimal(100), 2, "100.00"),
        (Fraction(0), 2, "0.00"),
        (Decimal("34.704"), 2, "34.70"),
        (Decimal("-93.125"), 2, "-93.13"),  # half away from zero
        (Decimal("-0.001"), 2, "0.00"),
        (Decimal("2.5"), 0, "3"),
        (Decimal("0.0005"), 3, "0.001"),
    ],
)
def test_round_half_up(value: Fraction | Decimal, places: int, expected: str) -> None:
    rounded = round_half_up(value, places)
    assert isinstance(rounded, Decimal)
    assert str(rounded) == expected
    assert rounded == Decimal(expected)


def test_round_half_up_keeps_long_values_exact() -> None:
    # 10^40/3 = 3333…3.333…: 40 integer digits, beyond Decimal's 28-digit context
    assert str(round_half_up(Fraction(10**40, 3))) == "3" * 40 + ".33"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(187, 2), "93.5"),
        (Fraction(280, 3), "280/3"),
        (Fraction(100), "100"),
        (Decimal(100), "100"),
        (Fraction(0), "0"),
        (Decimal("-0"), "0"),
        (Decimal("4.50"), "4.5"),
        (Fraction(1, 8), "0.125"),
        (Fraction(-187, 2), "-93.5"),
        (Fraction(1, 6), "1/6"),
        (Fraction(81125, 1000), "81.125"),
        (Decimal("34.704"), "34.704"),
        (Fraction(1, 2**30), "0.000000000931322574615478515625"),  # 5^30 / 10^30
        # 31 significant digits, more than Decimal's default context holds
        (Fraction(10**30 + 1, 2), "500000000000000000000000000000.5"),
        (Fraction(-(10**30) - 1, 2), "-500000000000000000000000000000.5"),
    ],
)
def test_exact(value: Fraction | Decimal, expected: str) -> None:
    assert exact(value) == expected
    assert Fraction(expected) == Fraction(value)


# Terminating decimals with many digits (p / 2^a 5^b) as well as arbitrary fractions.
long_decimals = st.builds(
    lambda n, a, b: Fraction(n, 2**a * 5**b),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=120),
)


@PROPERTY
@given(st.one_of(st.fractions(), long_decimals))
def test_exact_parses_back_unchanged(value: Fraction) -> None:
    text = exact(value)
    assert Fraction(text) == value
    # a terminating decimal is written as one, anything else as p/q
    terminates = all(q in (2, 5) for q in _prime_factors(value.denominator))
    assert ("/" not in text) is terminates


def _prime_factors(n: int) -> set[int]:
    found, p = set(), 2
    while p * p <= n:
        while n % p == 0:
            found.add(p)
            n //= p
        p += 1
    if n > 1:
        found.add(n)
    return found


@PROPERTY
@given(st.fractions(min_value=-1000, max_value=1000), st.integers(min_value=0, max_value=4))
def test_round_half_up_is_nearest_with_halves_away_from_zero(value: Fraction, places: int) -> None:
    rounded = Fraction(round_half_up(value, places))
    step = Fraction(1, 10**places)
    distance = abs(value - rounded)
    assert distance <= step / 2
    if distance == step / 2:
        assert abs(rounded) > abs(value)
    assert (rounded * 10**places).denominator == 1


# ---- properties of compute ---------------------------------------------------------------------

grade_answers = st.lists(st.sampled_from("ABCD"), min_size=19, max_size=19).map(
    lambda grades: dict(zip(POINT_IDS, grades, strict=True))
)
# Mostly B and C with a few A and D: more ties and uniform ballots than uniform sampling gives.
skewed_answers = st.lists(st.sampled_from("ABBCCD"), min_size=19, max_size=19).map(
    lambda grades: dict(zip(POINT_IDS, grades, strict=True))
)


def scored_ballots(groups: Sequence[str | None], max_size: int = 20) -> st.SearchStrategy[list[ScoredBallot]]:
    one = st.builds(
        lambda answers, group: score_ballot(T, answers, group),
        st.one_of(grade_answers, skewed_answers, st.sampled_from([by_items("AAAAA"), X, Y])),
        st.sampled_from(groups),
    )
    return st.lists(one, max_size=max_size)


rules_strategy = st.builds(
    Rules,
    trim=st.integers(min_value=0, max_value=3),
    k=st.integers(min_value=1, max_value=6),
    component_weight=st.sampled_from([Decimal("0.4"), Decimal("0.3"), Decimal(1)]),
    flagged_rule=st.sampled_from(["count", "exclude"]),
)
group_layouts = st.sampled_from(
    [
        [],
        [GroupSpec("lead", "班子"), GroupSpec("staff", "群众")],
        [GroupSpec("lead", "班子", Decimal(50)), GroupSpec("staff", "群众", Decimal(50))],
        [GroupSpec("lead", "班子", Decimal("33.3")), GroupSpec("staff", "群众", Decimal("66.7"))],
    ]
)


def reference_trimmed_mean(totals: Sequence[Decimal], trim: int) -> Fraction:
    """DESIGN.md's rule written out independently: sort, drop `trim` from each end if more than 5."""
    ordered = sorted(totals)
    if trim > 0 and len(ordered) > max(5, 2 * trim):
        ordered = ordered[trim : len(ordered) - trim]
    return Fraction(sum(ordered, Decimal(0))) / len(ordered)


@PROPERTY
@given(data=st.data(), rules=rules_strategy, groups=group_layouts)
def test_compute_ignores_ballot_order(data: st.DataObject, rules: Rules, groups: list[GroupSpec]) -> None:
    items = data.draw(scored_ballots(["lead", "staff"]))
    shuffled = data.draw(st.permutations(items))
    assert compute(T, shuffled, groups, rules) == compute(T, items, groups, rules)


@PROPERTY
@given(items=scored_ballots([None]), rules=rules_strategy)
def test_unweighted_score_is_the_trimmed_mean(items: list[ScoredBallot], rules: Rules) -> None:
    figures = compute(T, items, [], rules)
    eligible = [b for b in items if not (b.flagged and rules.flagged_rule == "exclude")]
    if not eligible:
        assert figures.status == "no_ballots"
        return
    if len(eligible) < rules.k:
        assert (figures.status, figures.score, figures.component) == ("too_few", None, None)
        return
    totals = [b.total for b in eligible]
    assert figures.score == reference_trimmed_mean(totals, rules.trim)
    assert min(totals) <= figures.score <= max(totals)
    assert figures.score == Fraction(figures.total_sum) / figures.counted
    assert figures.counted + figures.dropped == len(eligible)
    assert figures.component == figures.score * Fraction(rules.component_weight)


@PROPERTY
@given(items=scored_ballots(["g"]), rules=rules_strategy)
def test_one_group_weighted_100_is_its_plain_trimmed_mean(items: list[ScoredBallot], rules: Rules) -> None:
    weighted = compute(T, items, [GroupSpec("g", "全体", Decimal(100))], rules)
    eligible = [b for b in items if not (b.flagged and rules.flagged_rule == "exclude")]
    if not eligible:
        assert weighted.status == "no_ballots"
        return
    if len(eligible) < rules.k:
        # Fewer than K in all: no score at all, before any group is looked at.
        assert (weighted.status, weighted.score, weighted.insufficient_groups) == ("too_few", None, [])
        return
    plain = compute(T, items, [], rules)
    assert weighted.score == plain.score == reference_trimmed_mean([b.total for b in eligible], rules.trim)
    assert weighted.point_averages == plain.point_averages
    assert weighted.item_averages == plain.item_averages
    assert (weighted.counted, weighted.dropped, weighted.total_sum) == (plain.counted, plain.dropped, plain.total_sum)


@PROPERTY
@given(data=st.data(), rules=rules_strategy, groups=group_layouts)
def test_point_averages_add_up_to_the_score(data: st.DataObject, rules: Rules, groups: list[GroupSpec]) -> None:
    items = data.draw(scored_ballots(["lead", "staff"]))
    figures = compute(T, items, groups, rules)
    if figures.score is None:
        return
    assert sum(figures.point_averages.values(), Fraction(0)) == figures.score
    assert sum(figures.item_averages.values(), Fraction(0)) == figures.score
    for item in T.items:
        assert figures.item_averages[item.id] == sum(
            (figures.point_averages[point.id] for point in item.points), Fraction(0)
        )


def test_compute_on_another_template() -> None:
    # two items of 50 points each, numbers: ballots 50+50=100, 25+25=50, 0+0.5=0.5 -> no trim -> 150.5/3
    two = parse_template(
        {"id": "two", "name": "两项", "input": "numbers",
         "items": [{"id": "a", "name": "甲", "points": [{"id": "x", "name": "x", "max": 50}]},
                   {"id": "b", "name": "乙", "points": [{"id": "y", "name": "y", "max": 50}]}]}
    )
    items = [score_ballot(two, {"x": x, "y": y}, None) for x, y in [("50", "50"), ("25", "25"), ("0", "0.5")]]
    figures = compute(two, items, [], Rules(k=3))
    assert figures.score == Fraction(301, 6)
    assert figures.point_averages == {"x": Fraction(25), "y": Fraction(151, 6)}
    assert figures.item_averages == {"a": Fraction(25), "b": Fraction(151, 6)}
    assert [b.flagged for b in items] == [True, True, False]


def _shuffled(items: list[ScoredBallot], seed: int) -> list[ScoredBallot]:
    copy = list(items)
    random.Random(seed).shuffle(copy)
    return copy


def test_weighted_result_is_the_same_for_shuffled_ballots() -> None:
    expected = run(EVERYONE, specs("40", "30", "20", "10"))
    for seed in range(5):
        assert run(_shuffled(EVERYONE, seed), specs("40", "30", "20", "10")) == expected


@pytest.mark.parametrize(("uniform", "status", "counted"), [(1, "ok", 5), (2, "too_few", 0)])
def test_fewer_than_k_valid_ballots_publish_no_score(uniform: int, status: str, counted: int) -> None:
    """Six ballots with uniform ones excluded: four valid are fewer than K, and their mean would show them."""
    template = default_template()
    varied = {f"p{i:02d}": "AB"[i % 2] for i in range(1, 20)}
    ballots = [score_ballot(template, dict.fromkeys(varied, "A"), None)] * uniform
    ballots += [score_ballot(template, varied, None)] * (6 - uniform)
    figures = compute(template, ballots, [], Rules(trim=0, k=5, flagged_rule="exclude"))
    assert (figures.status, figures.counted, figures.ballots, figures.excluded_flagged) == (
        status, counted, 6, uniform
    )
    assert (figures.score is None) is (status == "too_few")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("ABCD"), min_size=19, max_size=19))
def test_uniform_read_from_the_grades_is_uniform_by_share(grades: list[str]) -> None:
    template = default_template()
    answers = {point.id: grade for point, grade in zip(template.points, grades, strict=True)}
    points = score_ballot(template, answers, None).points
    by_share = len({points[point.id] / point.max for point in template.points}) == 1
    assert score_ballot(template, answers, None).flagged is by_share is (len(set(grades)) == 1)
