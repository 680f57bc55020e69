"""app.imports: a unit list as Excel and people actually write it; every bad row named by its line."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from app.errors import Invalid
from app.imports import Existing, UnitRow, parse_units_csv, parse_units_file

CATEGORIES = ("party_gov", "central", "mass_org", "enterprise")
ALLOWED = "party_gov/central/mass_org/enterprise"
BOM = b"\xef\xbb\xbf"

GOOD_LINES = [
    "code,name,category",
    "JL001,省委办公厅,party_gov",
    "JL002,省总工会,mass_org",
    "JL003,某银行省分行,central",
]
GOOD_ROWS = [
    UnitRow(2, "JL001", "省委办公厅", "party_gov"),
    UnitRow(3, "JL002", "省总工会", "mass_org"),
    UnitRow(4, "JL003", "某银行省分行", "central"),
]


def csv_bytes(lines: list[str], *, newline: str = "\n", bom: bool = False, encoding: str = "utf-8") -> bytes:
    data = newline.join(lines).encode(encoding) + newline.encode(encoding)
    return BOM + data if bom else data


def parse(data: bytes, existing: Mapping[str, Existing] | None = None) -> list[UnitRow]:
    return parse_units_csv(data, categories=CATEGORIES, existing=existing)


def problems(data: bytes, existing: Mapping[str, Existing] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as caught:
        parse(data, existing)
    assert caught.value.status == 422
    return [(problem.code, problem.message()) for problem in caught.value.problems]


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_good_file(bom: bool, newline: str) -> None:
    assert parse(csv_bytes(GOOD_LINES, newline=newline, bom=bom)) == GOOD_ROWS


def test_excel_csv_utf8_with_blank_trailing_lines() -> None:
    # what Excel's "CSV UTF-8" writes: BOM, CRLF, and sometimes empty rows kept as bare commas
    data = BOM + b"\r\n".join(line.encode() for line in GOOD_LINES) + b"\r\n\r\n,,\r\n , , \r\n"
    assert parse(data) == GOOD_ROWS


def test_no_final_newline() -> None:
    assert parse("\n".join(GOOD_LINES).encode()) == GOOD_ROWS


def test_blank_lines_in_the_middle_keep_line_numbers() -> None:
    # line 3 is blank, so the second unit is on line 4
    data = csv_bytes(["code,name,category", "JL001,省委办公厅,party_gov", "", "JL002,省总工会,mass_org"])
    assert parse(data) == [UnitRow(2, "JL001", "省委办公厅", "party_gov"), UnitRow(4, "JL002", "省总工会", "mass_org")]


def test_cells_and_header_are_trimmed_and_header_case_ignored() -> None:
    data = csv_bytes([" Code , NAME ,Category", " JL001 , 省委 办公厅 , party_gov "])
    assert parse(data) == [UnitRow(2, "JL001", "省委 办公厅", "party_gov")]


def test_quoted_name_with_comma() -> None:
    data = csv_bytes(["code,name,category", '"JL004","中共某某委员会（机关党委）,直属",central'])
    assert parse(data) == [UnitRow(2, "JL004", "中共某某委员会（机关党委）,直属", "central")]


def test_length_limits() -> None:
    data = csv_bytes(["code,name,category", f"{'C' * 32},{'名' * 128},party_gov"])
    assert parse(data) == [UnitRow(2, "C" * 32, "名" * 128, "party_gov")]


# ---- bad rows ----------------------------------------------------------------------------------

BAD_LINES = [
    "code,name,category",  # 1
    "JL001,省委办公厅,party_gov",  # 2  fine
    "JL002,,party_gov",  # 3  no name
    "",  # 4  blank: skipped, still counted
    "JL003,省妇联,群团组织",  # 5  category by its Chinese name, not its key
    "JL001,省委宣传部,party_gov",  # 6  repeats line 2
    "JL004,省科协",  # 7  two columns
    "JL005,省文联,mass_org,备注",  # 8  four columns
    "JL900,省电力公司,enterprise",  # 9  already in the database: an update, not a problem
    "JL006,省交通厅,party_gov",  # 10 fine
]
BAD_PROBLEMS = [
    ("csv_row", "第 3 行：单位名称应为 1–128 个字符"),
    ("csv_row", f"第 5 行：单位类别 群团组织 无效，可选：{ALLOWED}"),
    ("csv_row", "第 6 行：单位编码 JL001 在文件中重复（另见第 2 行）"),
    ("csv_row", "第 7 行：应有 3 列，实有 2 列"),
    ("csv_row", "第 8 行：应有 3 列，实有 4 列"),
]
EXISTING = {"JL900": Existing("省电力公司", "central"), "JL901": Existing("省水利厅", "party_gov")}


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_every_bad_row_named_by_its_line(bom: bool, newline: str) -> None:
    data = csv_bytes(BAD_LINES, newline=newline, bom=bom)
    assert problems(data, EXISTING) == BAD_PROBLEMS


def test_bad_rows_in_english() -> None:
    with pytest.raises(Invalid) as caught:
        parse(csv_bytes(BAD_LINES), EXISTING)
    assert [problem.message("en") for problem in caught.value.problems] == [
        "Line 3: The unit name must have 1–128 characters",
        "Line 5: Category 群团组织 is not one of party_gov/central/mass_org/enterprise",
        "Line 6: Unit code JL001 repeats (see line 2)",
        "Line 7: 2 columns where 3 are expected",
        "Line 8: 4 columns where 3 are expected",
    ]


def test_several_errors_in_one_row_joined() -> None:
    data = csv_bytes(["code,name,category", f"{'C' * 33},,unknown"])
    assert problems(data) == [
        ("csv_row", "第 2 行：单位编码应为 1–32 个字符"
                    "；单位名称应为 1–128 个字符"
                    f"；单位类别 unknown 无效，可选：{ALLOWED}"),
    ]


def test_name_too_long() -> None:
    data = csv_bytes(["code,name,category", f"JL001,{'名' * 129},party_gov"])
    assert problems(data) == [("csv_row", "第 2 行：单位名称应为 1–128 个字符")]


def test_every_repeat_points_at_the_first_line() -> None:
    data = csv_bytes(["code,name,category", "JL001,甲,party_gov", "JL002,乙,central", "JL001,丙,central",
                      "JL001,丁,enterprise", "JL002,戊,mass_org"])
    assert problems(data) == [
        ("csv_row", "第 4 行：单位编码 JL001 在文件中重复（另见第 2 行）"),
        ("csv_row", "第 5 行：单位编码 JL001 在文件中重复（另见第 2 行）"),
        ("csv_row", "第 6 行：单位编码 JL002 在文件中重复（另见第 3 行）"),
    ]


def test_existing_codes_become_updates_with_what_changes() -> None:
    existing = {"JL001": Existing("省委办公室", "party_gov"), "JL003": Existing("某银行省分行", "central")}
    assert parse(csv_bytes(GOOD_LINES), existing) == [
        UnitRow(2, "JL001", "省委办公厅", "party_gov", "update", existing["JL001"]),
        UnitRow(3, "JL002", "省总工会", "mass_org"),
        UnitRow(4, "JL003", "某银行省分行", "central", "same", existing["JL003"]),
    ]


def test_unknown_category_keys_are_case_sensitive() -> None:
    data = csv_bytes(["code,name,category", "JL001,甲,Party_Gov"])
    assert problems(data) == [("csv_row", f"第 2 行：单位类别 Party_Gov 无效，可选：{ALLOWED}")]


# ---- the file as a whole ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_line", "shown"),
    [
        ("单位,名称,类别", "单位,名称,类别"),
        ("code,name", "code,name"),
        ("code,name,category,note", "code,name,category,note"),
        ("JL001,省委办公厅,party_gov", "JL001,省委办公厅,party_gov"),  # no header at all
        ("code;name;category", "code;name;category"),  # semicolons, as some European Excels write
    ],
)
def test_wrong_header(first_line: str, shown: str) -> None:
    data = csv_bytes([first_line, "JL001,省委办公厅,party_gov"], bom=True)
    assert problems(data) == [("csv_header", "第一行应为列名 单位编码,单位名称,单位类别（或 code,name,category；"
                                             f"可另加一列 往年测评年度），现为 {shown}")]


@pytest.mark.parametrize(
    "data",
    [b"", BOM, b"code,name,category\n", b"code,name,category\r\n\r\n,,\r\n", BOM + b"code,name,category"],
    ids=["empty", "bom-only", "header-only", "header-and-blanks", "bom-header"],
)
def test_no_units(data: bytes) -> None:
    assert problems(data) == [("csv_empty", "CSV 文件中没有单位")]


@pytest.mark.parametrize(
    "data",
    [
        csv_bytes(GOOD_LINES, encoding="utf-16"),  # Excel's "Unicode text"
        b"code,name,category\nJL001,Caf\xe9,party_gov\n",  # Latin-1
    ],
    ids=["utf-16", "latin-1"],
)
def test_neither_utf8_nor_gbk(data: bytes) -> None:
    assert problems(data) == [("csv_encoding", "CSV 文件应为 UTF-8 或 GBK 编码")]


# ---- issue #14, point 11: unit lists as people have them ----------------------------------------

NAMED = {"party_gov": "党政机关", "central": "中直单位", "mass_org": "群团组织", "enterprise": "企事业单位"}
CHINESE_LINES = [
    "单位编码,单位名称,单位类别",
    "JL001,省委办公厅,党政机关",
    "JL002,省总工会,群团组织",
    "JL003,某银行省分行,central",
]


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_chinese_headers_and_categories_in_gbk_or_utf8(encoding: str, newline: str) -> None:
    data = csv_bytes(CHINESE_LINES, newline=newline, encoding=encoding)
    assert parse_units_file(data, categories=NAMED) == GOOD_ROWS


def test_a_chinese_category_name_without_the_names_is_unknown() -> None:
    data = csv_bytes(["单位编码,单位名称,单位类别", "JL001,甲,党政机关"], encoding="gbk")
    assert problems(data) == [("csv_row", f"第 2 行：单位类别 党政机关 无效，可选：{ALLOWED}")]


def test_past_review_years_in_their_own_column() -> None:
    data = csv_bytes(["单位名称,单位编码,单位类别,往年测评年度", "省委办公厅,JL001,党政机关,2023、2024",
                      "省总工会,JL002,群团组织,", "某行,JL003,central,2021；2019 2020"], encoding="gbk")
    rows = parse_units_file(data, categories=NAMED, existing={"JL002": Existing("省总工会", "mass_org")})
    assert [(r.code, r.action, sorted(r.years)) for r in rows] == [
        ("JL001", "create", [2023, 2024]), ("JL002", "same", []), ("JL003", "create", [2019, 2020, 2021])]
    again = parse_units_file(data, categories=NAMED,
                             existing={"JL001": Existing("省委办公厅", "party_gov", frozenset({2024}))})
    assert (again[0].action, sorted(again[0].new_years)) == ("update", [2023])


def test_bad_review_years_are_named() -> None:
    data = csv_bytes(["code,name,category,reviewed_years", "JL001,甲,party_gov,2024年", "JL002,乙,central,1999"])
    assert problems(data) == [
        ("csv_row", "第 2 行：往年测评年度 2024年 应为 2000–2100 的年份，多个年份用顿号分隔"),
        ("csv_row", "第 3 行：往年测评年度 1999 应为 2000–2100 的年份，多个年份用顿号分隔"),
    ]
