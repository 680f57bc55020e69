"""app.templates: the default template, the rules a template must keep, and reading answers."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import assume, given, settings, strategies as st

from app.errors import Invalid
from app.templates import (
    BallotTemplate,
    default_template,
    parse_answers,
    parse_template,
    point_scores,
    read_answers,
)

T = default_template()
ALL_A = {f"p{i:02d}": "A" for i in range(1, 20)}
PROPERTY = settings(max_examples=100, deadline=None)


def problems(call: Callable[[], object]) -> list[tuple[str, str]]:
    """(code, Chinese message) of every problem the call raised, in order."""
    with pytest.raises(Invalid) as caught:
        call()
    error = caught.value
    assert error.status == 422
    assert error.problems, "Invalid must carry its problems"
    # the headline is the first problem
    assert (error.problem.code, error.message()) == (error.problems[0].code, error.problems[0].message())
    return [(problem.code, problem.message()) for problem in error.problems]


def default_data() -> dict[str, Any]:
    """The default template as JSON-ready data, to be broken one way or another."""
    return copy.deepcopy(json.loads(T.to_json()))


def point_data(data: dict[str, Any], point_id: str) -> dict[str, Any]:
    for item in data["items"]:
        for point in item["points"]:
            if point["id"] == point_id:
                return point  # type: ignore[no-any-return]
    raise KeyError(point_id)


def with_points(**maxima: str) -> dict[str, Any]:
    data = default_data()
    for point_id, value in maxima.items():
        point_data(data, point_id)["max"] = value
    return data


# ---- the default template --------------------------------------------------------------------------

# DESIGN.md, "Default template"
DESIGN_TABLE = [
    ("i1", "一、履行主体责任", [("履行第一责任人职责", 6), ("研究部署党建工作", 5), ("党建与业务融合", 5), ("上年问题整改", 4)]),
    ("i2", "二、政治与思想建设", [("理论学习", 6), ("贯彻上级决策部署", 6), ("意识形态工作", 4), ("党员教育培训", 4)]),
    ("i3", "三、组织建设",
     [("组织设置与按期换届", 4), ("三会一课与组织生活", 6), ("党员发展管理", 5), ("党务干部队伍", 5)]),
    ("i4", "四、作风纪律建设",
     [("落实八项规定", 5), ("纠治形式主义官僚主义", 5), ("廉洁与纪律教育", 5), ("联系服务群众", 5)]),
    ("i5", "五、工作成效", [("基层组织战斗力", 7), ("促进中心工作成效", 7), ("党员群众满意度", 6)]),
]


def test_default_template_matches_design() -> None:
    assert (T.id, T.version, T.input) == ("default", 1, "grades")
    assert [(item.id, item.name) for item in T.items] == [(key, name) for key, name, _ in DESIGN_TABLE]
    expected_points = [
        (f"p{n:02d}", name, Decimal(maximum))
        for n, (name, maximum) in enumerate((p for _, _, points in DESIGN_TABLE for p in points), start=1)
    ]
    assert [(point.id, point.name, point.max) for point in T.points] == expected_points
    assert len(T.points) == 19
    assert T.point_ids() == tuple(f"p{n:02d}" for n in range(1, 20))
    # 6+5+5+4, 6+6+4+4, 4+6+5+5, 5+5+5+5, 7+7+6: 20 each, 100 in all
    assert [sum((p.max for p in item.points), Decimal(0)) for item in T.items] == [Decimal(20)] * 5
    assert sum((p.max for p in T.points), Decimal(0)) == Decimal(100)
    assert all(T.input_of(point) == "grades" for point in T.points)


def test_default_template_grades() -> None:
    assert [(g.key, g.label, g.fraction) for g in T.grades] == [
        ("A", "好", Decimal(1)),
        ("B", "较好", Decimal("0.8")),
        ("C", "一般", Decimal("0.5")),
        ("D", "差", Decimal(0)),
    ]


def test_item_of_point() -> None:
    mapping = T.item_of_point()
    assert [mapping[f"p{n:02d}"] for n in (1, 4, 5, 8, 9, 12, 13, 16, 17, 19)] == [
        "i1", "i1", "i2", "i2", "i3", "i3", "i4", "i4", "i5", "i5",
    ]


def test_template_round_trips_through_json() -> None:
    assert parse_template(T.to_json()) == T
    assert parse_template(T.to_json().encode("utf-8")) == T
    assert parse_template(default_data()) == T


def test_json_numbers_keep_every_digit() -> None:
    # maxima and fractions written as JSON numbers, not strings; 0.80000000000000001 is not a float's 0.8
    text = T.to_json().replace('"0.8"', "0.80000000000000001").replace('"max":"6"', '"max":6.0')
    assert "0.80000000000000001" in text and '"max":6.0' in text
    template = parse_template(text)
    assert template.grades[1].fraction == Decimal("0.80000000000000001")
    assert template.points[0].max == Decimal(6)


def test_float_values_in_a_mapping_become_exact_decimals() -> None:
    data = default_data()
    data["grades"][1]["fraction"] = 0.8
    point_data(data, "p01")["max"] = 6.0
    template = parse_template(data)
    assert str(template.grades[1].fraction) == "0.8"
    assert template.points[0].max == Decimal(6)


# ---- template rules: each problem named -----------------------------------------------------------


def test_maxima_must_sum_to_100() -> None:
    # p19 6 -> 5: 100 - 1 = 99
    assert problems(lambda: parse_template(with_points(p19="5"))) == [
        ("template_max_sum", "各测评要点满分之和应为 100，现为 99"),
    ]


@pytest.mark.parametrize(
    ("maxima", "total"),
    [
        ({"p19": "5.5"}, "99.5"),  # 100 - 0.5
        ({"p01": "10"}, "104"),  # 100 + 4
        ({"p01": "6.0", "p02": "5.50"}, "100.5"),  # trailing zeros are not shown
        ({"p17": "1000"}, "1093"),  # 100 - 7 + 1000
    ],
)
def test_max_sum_message_shows_the_actual_sum(maxima: dict[str, str], total: str) -> None:
    assert problems(lambda: parse_template(with_points(**maxima))) == [
        ("template_max_sum", f"各测评要点满分之和应为 100，现为 {total}"),
    ]


def test_max_sum_message_in_english() -> None:
    with pytest.raises(Invalid) as caught:
        parse_template(with_points(p19="5"))
    assert caught.value.message("en") == "The points' maxima must sum to 100, not 99"


def test_huge_maximum_is_a_problem_not_a_crash() -> None:
    # 1E+30 % 0.5 cannot be computed in Decimal's context; the template is simply wrong
    codes = [code for code, _ in problems(lambda: parse_template(with_points(p01="1E+30")))]
    assert codes == ["template_max_sum"]


@pytest.mark.parametrize(
    ("maxima", "expected"),
    [
        # 5.25 + 5.75 = 6 + 5: the sum stays 100, only the steps are wrong
        ({"p01": "5.25", "p02": "5.75"}, [
            ("template_max_positive", "测评要点 p01 的满分应大于 0 且为 0.5 的整数倍，现为 5.25"),
            ("template_max_positive", "测评要点 p02 的满分应大于 0 且为 0.5 的整数倍，现为 5.75"),
        ]),
        # p01 6 -> 10, p04 4 -> 0: still 100
        ({"p01": "10", "p04": "0"}, [
            ("template_max_positive", "测评要点 p04 的满分应大于 0 且为 0.5 的整数倍，现为 0"),
        ]),
        # p01 6 -> 12, p04 4 -> -2: still 100
        ({"p01": "12", "p04": "-2"}, [
            ("template_max_positive", "测评要点 p04 的满分应大于 0 且为 0.5 的整数倍，现为 -2"),
        ]),
    ],
)
def test_point_max_must_be_positive_half_points(maxima: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert problems(lambda: parse_template(with_points(**maxima))) == expected


def test_duplicate_point_id() -> None:
    data = default_data()
    point_data(data, "p02")["id"] = "p01"
    assert problems(lambda: parse_template(data)) == [("template_duplicate_id", "编号 p01 重复出现")]


def test_item_and_point_share_one_id_space() -> None:
    data = default_data()
    data["items"][1]["id"] = "p01"
    assert problems(lambda: parse_template(data)) == [("template_duplicate_id", "编号 p01 重复出现")]


def test_duplicate_grade_key() -> None:
    data = default_data()
    data["grades"][2]["key"] = "B"
    assert problems(lambda: parse_template(data)) == [("template_duplicate_id", "编号 B 重复出现")]


def test_grade_keys_differing_only_in_case_are_duplicates() -> None:
    # answers are read regardless of case, so "a" could not be told from "A"
    data = default_data()
    data["grades"][1]["key"] = "a"
    assert problems(lambda: parse_template(data)) == [("template_duplicate_id", "编号 a 重复出现")]


@pytest.mark.parametrize(
    ("fraction", "shown"),
    [("1.2", "1.2"), ("-0.1", "-0.1"), ("1.0001", "1.0001")],
)
def test_grade_fraction_between_0_and_1(fraction: str, shown: str) -> None:
    data = default_data()
    data["grades"][1]["fraction"] = fraction
    assert problems(lambda: parse_template(data)) == [
        ("template_grade_fraction", f"等级 B 的得分比例应在 0 到 1 之间，现为 {shown}"),
    ]


@pytest.mark.parametrize("fraction", ["0", "1", "0.333"])
def test_grade_fraction_bounds_are_allowed(fraction: str) -> None:
    data = default_data()
    data["grades"][1]["fraction"] = fraction
    assert parse_template(data).grades[1].fraction == Decimal(fraction)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "第 1 行第 2 列"),
        ("", "第 1 行第 1 列"),
        ('{"id": }', "第 1 行第 8 列"),
        ('{\n  "id": "x",\n  "name": ]', "第 3 行第 11 列"),
    ],
)
def test_invalid_json_text(text: str, error: str) -> None:
    assert problems(lambda: parse_template(text)) == [("template_invalid_json", f"模板不是有效的 JSON（{error}有误）")]


def test_undecodable_bytes_are_named_as_such() -> None:
    assert problems(lambda: parse_template(b"\xff\xfe\x00")) == [
        ("template_not_utf8", "模板应为 UTF-8 编码的 JSON 文本")]


def test_missing_required_fields_all_named() -> None:
    data = default_data()
    del data["name"]
    del point_data(data, "p02")["max"]
    del data["items"][4]["points"]
    assert problems(lambda: parse_template(data)) == [
        ("template_field", "模板字段 name 必须填写"),
        ("template_field", "模板字段 items.0.points.1.max 必须填写"),
        ("template_field", "模板字段 items.4.points 必须填写"),
    ]


def test_unknown_field_and_bad_id() -> None:
    data = default_data()
    data["colour"] = "red"
    point_data(data, "p03")["id"] = "p 03"
    found = problems(lambda: parse_template(data))
    assert found == [("template_field", "模板字段 items.0.points.2.id 格式不正确"),
                     ("template_field", "模板字段 colour 不是可用的字段")]


@pytest.mark.parametrize("value", ["[]", "null", '"text"', []])
def test_template_must_be_an_object(value: object) -> None:
    found = problems(lambda: parse_template(value))  # type: ignore[arg-type]
    assert found == [
        ("template_field", "模板字段 (root) 应为 JSON 对象"),
    ]


def test_no_items() -> None:
    data = default_data()
    data["items"] = []
    assert problems(lambda: parse_template(data)) == [("template_no_items", "模板至少需要一个测评项目")]


def test_empty_item_and_its_missing_points() -> None:
    data = default_data()
    data["items"][4]["points"] = []  # item i5 (7 + 7 + 6 = 20) left empty: 80 remain
    assert problems(lambda: parse_template(data)) == [
        ("template_empty_item", "测评项目 i5 没有测评要点"),
        ("template_max_sum", "各测评要点满分之和应为 100，现为 80"),
    ]


def test_grades_needed_unless_every_point_takes_numbers() -> None:
    data = default_data()
    data["grades"] = []
    assert problems(lambda: parse_template(data)) == [("template_no_grades", "按等级打分的模板至少需要一个等级")]
    data["input"] = "numbers"
    assert parse_template(data).grades == ()


def test_every_template_problem_reported_at_once() -> None:
    data = default_data()
    point_data(data, "p02")["id"] = "p01"  # duplicate
    point_data(data, "p03")["max"] = "5.25"  # off the half-point step; sum 100.25
    data["grades"][0]["fraction"] = "2"
    assert problems(lambda: parse_template(data)) == [
        ("template_duplicate_id", "编号 p01 重复出现"),
        ("template_max_positive", "测评要点 p03 的满分应大于 0 且为 0.5 的整数倍，现为 5.25"),
        ("template_max_sum", "各测评要点满分之和应为 100，现为 100.25"),
        ("template_grade_fraction", "等级 A 的得分比例应在 0 到 1 之间，现为 2"),
    ]


# ---- reading answers -----------------------------------------------------------------------------


def test_complete_grade_answers() -> None:
    assert parse_answers(T, ALL_A) == ALL_A


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("A", "A"), ("a", "A"), (" b ", "B"), ("c\n", "C"), ("D", "D"), ("\td", "D")],
)
def test_grade_case_and_spaces_forgiven(typed: str, canonical: str) -> None:
    assert parse_answers(T, {**ALL_A, "p07": typed})["p07"] == canonical


def test_lower_case_grade_keys_answerable() -> None:
    data = default_data()
    for grade in data["grades"]:
        grade["key"] = grade["key"].lower()
    template = parse_template(data)
    answers = parse_answers(template, {**ALL_A, "p01": "b", "p02": " C "})
    # answered in the template's own keys, whatever the case typed
    assert answers == {**{pid: "a" for pid in ALL_A}, "p01": "b", "p02": "c"}
    # 100 - 6 x 0.2 - 5 x 0.5 = 96.3
    assert sum(point_scores(template, answers).values(), Decimal(0)) == Decimal("96.3")


def test_unknown_point() -> None:
    assert problems(lambda: parse_answers(T, {**ALL_A, "p20": "A"})) == [
        ("ballot_unknown_point", "测评要点 p20 不在本测评票上"),
    ]


def test_every_missing_point_named() -> None:
    raw = {pid: grade for pid, grade in ALL_A.items() if pid not in ("p05", "p19")}
    assert problems(lambda: parse_answers(T, raw)) == [
        ("ballot_missing_point", "测评要点 p05 尚未打分"),
        ("ballot_missing_point", "测评要点 p19 尚未打分"),
    ]


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_answer_is_missing(empty: object) -> None:
    assert problems(lambda: parse_answers(T, {**ALL_A, "p03": empty})) == [
        ("ballot_missing_point", "测评要点 p03 尚未打分"),
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("E", "E"), ("好", "好"), ("AB", "AB"), (1, "1"), (" ", " "), (True, "True")],
)
def test_grade_the_template_lacks(value: object, shown: str) -> None:
    assert problems(lambda: parse_answers(T, {**ALL_A, "p01": value})) == [
        ("ballot_unknown_grade", f"测评要点 p01 的等级 {shown} 无效，可选：A/B/C/D"),
    ]


def test_every_answer_problem_reported_at_once() -> None:
    raw: dict[str, object] = {**ALL_A, "p01": "E", "x": "A"}
    del raw["p10"], raw["p11"]
    assert problems(lambda: parse_answers(T, raw)) == [
        ("ballot_unknown_point", "测评要点 x 不在本测评票上"),
        ("ballot_unknown_grade", "测评要点 p01 的等级 E 无效，可选：A/B/C/D"),
        ("ballot_missing_point", "测评要点 p10 尚未打分"),
        ("ballot_missing_point", "测评要点 p11 尚未打分"),
    ]


NUMBERS = parse_template({**default_data(), "id": "numbers", "input": "numbers"})
ZEROS = {pid: "0" for pid in ALL_A}


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        (4.5, "4.5"),  # a float that is exactly 4.5
        (6.0, "6"),
        (0.5, "0.5"),
        (6, "6"),
        (0, "0"),
        ("4.5", "4.5"),
        ("4.50", "4.5"),
        (" 3 ", "3"),
        ("6.000", "6"),
        ("6E0", "6"),
        ("0.5E1", "5"),
        ("-0", "0"),  # one answer, one canonical form
        (-0.0, "0"),
        ("0.0", "0"),
    ],
)
def test_numbers_accepted_exactly(value: object, canonical: str) -> None:
    assert parse_answers(NUMBERS, {**ZEROS, "p01": value})["p01"] == canonical


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ("6.5", "ballot_number_range", "测评要点 p01 的分数应在 0 到 6 之间，收到 6.5"),  # p01's max is 6
        (7, "ballot_number_range", "测评要点 p01 的分数应在 0 到 6 之间，收到 7"),
        ("-0.5", "ballot_number_range", "测评要点 p01 的分数应在 0 到 6 之间，收到 -0.5"),
        ("1e3", "ballot_number_range", "测评要点 p01 的分数应在 0 到 6 之间，收到 1e3"),
        ("4.3", "ballot_number_step", "测评要点 p01 的分数应为 0.5 的整数倍，收到 4.3"),
        (4.25, "ballot_number_step", "测评要点 p01 的分数应为 0.5 的整数倍，收到 4.25"),
        (0.1, "ballot_number_step", "测评要点 p01 的分数应为 0.5 的整数倍，收到 0.1"),
        ("4.5000000000000000000000000000001", "ballot_number_step",
         "测评要点 p01 的分数应为 0.5 的整数倍，收到 4.5000000000000000000000000000001"),
        ("abc", "ballot_not_number", "测评要点 p01 应填数字，收到 abc"),
        ("4,5", "ballot_not_number", "测评要点 p01 应填数字，收到 4,5"),
        ("NaN", "ballot_not_number", "测评要点 p01 应填数字，收到 NaN"),
        ("Infinity", "ballot_not_number", "测评要点 p01 应填数字，收到 Infinity"),
        (True, "ballot_not_number", "测评要点 p01 应填数字，收到 True"),
        ([4], "ballot_not_number", "测评要点 p01 应填数字，收到 [4]"),
        ("A", "ballot_not_number", "测评要点 p01 应填数字，收到 A"),
    ],
)
def test_bad_numbers(value: object, code: str, message: str) -> None:
    assert problems(lambda: parse_answers(NUMBERS, {**ZEROS, "p01": value})) == [(code, message)]


def test_number_range_names_a_fractional_maximum() -> None:
    data = with_points(p01="5.5", p04="4.5")  # 6 -> 5.5 and 4 -> 4.5: still 100
    template = parse_template({**data, "input": "numbers"})
    assert problems(lambda: parse_answers(template, {**ZEROS, "p01": "6"})) == [
        ("ballot_number_range", "测评要点 p01 的分数应在 0 到 5.5 之间，收到 6"),
    ]


def test_points_may_override_the_input_mode() -> None:
    data = default_data()
    point_data(data, "p19")["input"] = "numbers"
    template = parse_template(data)
    answers = parse_answers(template, {**ALL_A, "p19": 5.5})
    assert answers == {**ALL_A, "p19": "5.5"}
    # 100 - 6 + 5.5 = 99.5
    assert sum(point_scores(template, answers).values(), Decimal(0)) == Decimal("99.5")
    assert problems(lambda: parse_answers(template, {**ALL_A, "p19": "A"})) == [
        ("ballot_not_number", "测评要点 p19 应填数字，收到 A"),
    ]


# ---- properties ----------------------------------------------------------------------------------

GRADE_SETS = [
    [("A", "1"), ("B", "0.8"), ("C", "0.5"), ("D", "0")],
    [("a", "1"), ("b", "0.6"), ("c", "0")],
    [("Y", "1"), ("N", "0")],
    [("G1", "1"), ("G2", "0.75"), ("g3", "0.25")],
]


@st.composite
def half_point_maxima(draw: st.DrawFn) -> list[Decimal]:
    """Positive multiples of 0.5 that sum to exactly 100: 200 half points cut into n parts."""
    n = draw(st.integers(min_value=1, max_value=25))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=199), min_size=n - 1, max_size=n - 1, unique=True))
    bounds = [0, *sorted(cuts), 200]
    return [Decimal(high - low) / 2 for low, high in pairwise(bounds)]


def max_json(draw: st.DrawFn, value: Decimal) -> object:
    """The same maximum as JSON may carry it: a string, a float, or an int when whole."""
    forms: list[object] = [str(value), float(value)]
    if value == value.to_integral_value():
        forms.append(int(value))
    return draw(st.sampled_from(forms))


@st.composite
def template_data(draw: st.DrawFn, maxima: list[Decimal]) -> dict[str, Any]:
    n = len(maxima)
    cuts = draw(st.sets(st.integers(min_value=1, max_value=n - 1))) if n > 1 else set()
    bounds = [0, *sorted(cuts), n]
    grades = draw(st.sampled_from(GRADE_SETS))
    items = [
        {
            "id": f"i{index}",
            "name": f"项目{index}",
            "points": [
                {
                    "id": f"p{j}",
                    "name": f"要点{j}",
                    "max": max_json(draw, maxima[j]),
                    "input": draw(st.sampled_from([None, "grades", "numbers"])),
                }
                for j in range(low, high)
            ],
        }
        for index, (low, high) in enumerate(pairwise(bounds), start=1)
    ]
    return {
        "id": "random",
        "name": "随机模板",
        "input": draw(st.sampled_from(["grades", "numbers"])),
        "grades": [{"key": key, "label": f"等级{key}", "fraction": fraction} for key, fraction in grades],
        "items": items,
    }


@PROPERTY
@given(data=st.data())
def test_templates_summing_to_100_are_accepted(data: st.DataObject) -> None:
    maxima = data.draw(half_point_maxima())
    template = parse_template(data.draw(template_data(maxima)))
    assert [point.max for point in template.points] == maxima
    assert sum((point.max for point in template.points), Decimal(0)) == Decimal(100)
    assert parse_template(template.to_json()) == template


@PROPERTY
@given(data=st.data(), halves=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=25))
def test_templates_not_summing_to_100_are_rejected(data: st.DataObject, halves: list[int]) -> None:
    assume(sum(halves) != 200)
    maxima = [Decimal(h) / 2 for h in halves]
    total = sum(halves)
    shown = str(total // 2) if total % 2 == 0 else f"{total // 2}.5"
    broken = data.draw(template_data(maxima))
    found = problems(lambda: parse_template(broken))
    assert found == [("template_max_sum", f"各测评要点满分之和应为 100，现为 {shown}")]


def half_text(halves: int) -> str:
    return str(halves // 2) if halves % 2 == 0 else f"{halves // 2}.5"


@st.composite
def answer_for(draw: st.DrawFn, template: BallotTemplate, point_id: str) -> tuple[object, str]:
    """A valid answer in one of the forms a phone may send, and its canonical form."""
    point = next(p for p in template.points if p.id == point_id)
    if template.input_of(point) == "grades":
        key = draw(st.sampled_from([grade.key for grade in template.grades]))
        typed = draw(st.sampled_from([key, key.lower(), key.upper(), f" {key} "]))
        return typed, key
    halves = draw(st.integers(min_value=0, max_value=int(point.max * 2)))
    value = Decimal(halves) / 2
    forms: list[object] = [half_text(halves), f"{value:.2f}", float(value)]
    if halves % 2 == 0:
        forms.append(halves // 2)
    return draw(st.sampled_from(forms)), half_text(halves)


@PROPERTY
@given(data=st.data())
def test_complete_valid_answers_accepted_and_canonical_round_trips(data: st.DataObject) -> None:
    template = parse_template(data.draw(template_data(data.draw(half_point_maxima()))))
    pairs = {pid: data.draw(answer_for(template, pid)) for pid in template.point_ids()}
    raw = {pid: typed for pid, (typed, _) in pairs.items()}
    expected = {pid: canonical for pid, (_, canonical) in pairs.items()}
    canonical = parse_answers(template, raw)
    assert canonical == expected
    assert parse_answers(template, canonical) == canonical
    scores = point_scores(template, canonical)
    assert all(Decimal(0) <= scores[p.id] <= p.max for p in template.points)
    assert Decimal(0) <= sum(scores.values(), Decimal(0)) <= Decimal(100)


@PROPERTY
@given(data=st.data())
def test_each_missing_point_is_reported(data: st.DataObject) -> None:
    template = parse_template(data.draw(template_data(data.draw(half_point_maxima()))))
    ids = template.point_ids()
    missing = data.draw(st.sets(st.sampled_from(ids), min_size=1))
    raw = {pid: data.draw(answer_for(template, pid))[0] for pid in ids if pid not in missing}
    found = problems(lambda: parse_answers(template, raw))
    assert found == [("ballot_missing_point", f"测评要点 {pid} 尚未打分") for pid in ids if pid in missing]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f"p{i:02d}" for i in range(1, 21)]),
                       st.one_of(st.sampled_from(["A", "B", "C", "D", "a", " B", "E", ""]), st.integers(0, 3)),
                       min_size=18, max_size=20))
def test_the_shortcut_for_canonical_answers_agrees_with_every_rule(raw: dict[str, object]) -> None:
    """What every phone sends takes a shortcut; it must give what the full reading gives, or step aside."""
    shortcut = T.exact_grade_answers(raw)
    try:
        full: dict[str, str] | None = read_answers(T, raw)
    except Invalid:
        full = None
    if full is None:
        assert shortcut is None
        with pytest.raises(Invalid):
            parse_answers(T, raw)
    else:
        assert shortcut in (None, full)
        assert parse_answers(T, raw) == full
