"""Reading a unit list as people have it: Excel's CSV (UTF-8, or GBK/GB18030 as Excel on Chinese
Windows saves it) or a workbook, headers and categories in Chinese or as keys. Pure.

A row whose code is new creates a unit; a row whose code exists updates it, and the preview says
what changes. An optional column lists the years a unit had its on-site review before this service
(往年测评年度), so that the three-year coverage is right from the first year.

A unit list is a few hundred rows of a few short columns (the province has 133 units), so anything
much larger is refused before it costs anything: the file's size, what a workbook unpacks to, and
the rows and columns read. A workbook is read as a stream (openpyxl's read-only mode) within those
bounds, whatever range its sheet declares: a 16.8 KB file declaring A1:XFD1048576 once took 425 MB
and 6 s, as openpyxl padded every row to 16,384 cells.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from app import text
from app.errors import Invalid, Problem, TooLarge, invalid_with

# What people call each column; a header cell is matched case-insensitively, trimmed.
COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code", "单位编码", "编码", "单位代码"),
    "name": ("name", "单位名称", "名称"),
    "category": ("category", "单位类别", "类别"),
    "years": ("reviewed_years", "往年测评年度", "测评年度", "往年测评"),
}
REQUIRED = ("code", "name", "category")
MAX_CODE = 32
MAX_NAME = 128
FIRST_YEAR, LAST_YEAR = 2000, 2100
# "2023、2024", "2023,2024", "2023；2024" or "2023 2024" in one cell.
YEAR_SEPARATORS = re.compile(r"[\s,，、;；/]+")
# The file as uploaded, and a workbook once unpacked (the sum of its parts as the zip declares them;
# Python's zipfile reads no part beyond its declared size).
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_UNPACKED_BYTES = 20 * 1024 * 1024
# Units in one file; and the sheet rows read in all, blank ones included, before giving up.
MAX_ROWS = 2_000
MAX_SHEET_ROWS = MAX_ROWS + 500
# Columns read from a sheet: enough to see that a row has too many; beyond them nothing is read.
MAX_COLUMNS = 26

Action = Literal["create", "update", "same"]
Categories = Mapping[str, str] | Collection[str]  # key -> Chinese name, or the keys alone


@dataclass(frozen=True)
class Existing:
    """A unit already in the service, as an import compares with it."""

    name: str
    category: str
    years: frozenset[int] = frozenset()


@dataclass(frozen=True)
class UnitRow:
    line: int
    code: str
    name: str
    category: str
    action: Action = "create"
    before: Existing | None = None
    years: frozenset[int] = field(default=frozenset())

    @property
    def new_years(self) -> frozenset[int]:
        return self.years - (self.before.years if self.before else frozenset())


def decode(data: bytes) -> str:
    """UTF-8 (with or without Excel's byte-order mark), else GB18030, the superset of the GBK that
    Excel on Chinese Windows writes for "CSV (逗号分隔)"."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise invalid_with([Problem("csv_encoding")])


def parse_units_csv(
    data: bytes, *, categories: Categories, existing: Mapping[str, Existing] | None = None
) -> list[UnitRow]:
    """All rows, or Invalid naming every bad row by its line number: nothing half-imported."""
    try:
        rows = list(csv.reader(io.StringIO(decode(data), newline="")))
    except csv.Error:  # a cell over csv's own field limit: no unit list has one
        raise invalid_with([Problem("csv_encoding")]) from None
    return _parse_rows(rows, categories=categories, existing=existing or {})


def parse_units_xlsx(
    data: bytes, *, categories: Categories, existing: Mapping[str, Existing] | None = None
) -> list[UnitRow]:
    """The first sheet of a workbook, read like the CSV: same header, same rules, same line numbers."""
    from openpyxl import load_workbook  # only needed for spreadsheets

    _check_unpacked_size(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise invalid_with([Problem("xlsx_unreadable")]) from None
    try:
        sheet = workbook.worksheets[0]
        # Explicit bounds: read-only mode would otherwise pad each row to the declared range.
        cells = sheet.iter_rows(max_row=MAX_SHEET_ROWS + 1, max_col=MAX_COLUMNS, values_only=True)
        rows = [["" if cell is None else str(cell) for cell in row] for row in cells]
    except Exception:
        raise invalid_with([Problem("xlsx_unreadable")]) from None
    finally:
        workbook.close()
    if len(rows) > MAX_SHEET_ROWS:
        raise invalid_with([Problem("import_too_many_rows", {"max": MAX_ROWS})])
    # Spreadsheets pad rows with empty cells to the widest row; trim them back.
    rows = [row[: max((i + 1 for i, cell in enumerate(row) if cell.strip()), default=0)] for row in rows]
    return _parse_rows(rows, categories=categories, existing=existing or {})


def _check_unpacked_size(data: bytes) -> None:
    try:
        declared = sum(item.file_size for item in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, ValueError):
        raise invalid_with([Problem("xlsx_unreadable")]) from None
    if declared > MAX_UNPACKED_BYTES:
        raise Invalid("xlsx_too_large", limit=MAX_UNPACKED_BYTES)


XLSX_MAGIC = b"PK\x03\x04"


def parse_units_file(
    data: bytes, *, categories: Categories, existing: Mapping[str, Existing] | None = None
) -> list[UnitRow]:
    """CSV or XLSX, told apart by content rather than by a file name the user may have changed."""
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge("import_too_large", limit=MAX_FILE_BYTES)
    parse = parse_units_xlsx if data.startswith(XLSX_MAGIC) else parse_units_csv
    return parse(data, categories=categories, existing=existing)


def _columns(header: list[str]) -> dict[str, int] | None:
    """Which column holds what; None when a required one is missing or a cell is not a known name."""
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = cell.strip().lower()
        kind = next((kind for kind, names in COLUMNS.items() if name in names), None)
        if kind is None or kind in found:
            return None
        found[kind] = index
    return found if all(kind in found for kind in REQUIRED) else None


def parse_years(cell: str) -> frozenset[int] | None:
    """"2023、2024" -> {2023, 2024}; None when a part is not a year the service takes."""
    parts = [part for part in YEAR_SEPARATORS.split(cell.strip()) if part]
    if not all(part.isdigit() and FIRST_YEAR <= int(part) <= LAST_YEAR for part in parts):
        return None
    return frozenset(int(part) for part in parts)


def _parse_rows(rows: list[list[str]], *, categories: Categories, existing: Mapping[str, Existing]) -> list[UnitRow]:
    if not rows:
        raise invalid_with([Problem("csv_empty")])
    if sum(1 for row in rows[1:] if any(cell.strip() for cell in row)) > MAX_ROWS:
        raise invalid_with([Problem("import_too_many_rows", {"max": MAX_ROWS})])
    columns = _columns(rows[0])
    if columns is None:
        raise invalid_with([Problem("csv_header", {"header": ",".join(rows[0])})])
    # A category by its key or by its Chinese name: 党政机关 and party_gov are the same.
    by_name = {name: key for key, name in categories.items()} if isinstance(categories, Mapping) else {}
    keys = list(categories)
    allowed = "/".join(keys)
    problems: list[Problem] = []
    units: list[UnitRow] = []
    first_line: dict[str, int] = {}
    for index, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # Excel leaves blank lines at the end
        if len(cells) != len(columns):
            problems.append(_row(index, [Problem("csv_columns", {"expected": len(columns), "count": len(cells)})]))
            continue
        code, name, given = (cells[columns[kind]].strip() for kind in REQUIRED)
        category = given if given in keys else by_name.get(given, given)
        years = parse_years(cells[columns["years"]]) if "years" in columns else frozenset()
        errors = []
        if not code or len(code) > MAX_CODE:
            errors.append(Problem("csv_code_length", {"max": MAX_CODE}))
        elif text.has_control(code):
            errors.append(Problem("text_control", {"field": "code"}))
        if not name or len(name) > MAX_NAME:
            errors.append(Problem("csv_name_length", {"max": MAX_NAME}))
        elif text.has_control(name):
            errors.append(Problem("text_control", {"field": "unit_name"}))
        if category not in keys:
            errors.append(Problem("unit_unknown_category", {"category": given, "allowed": allowed}))
        if years is None:
            errors.append(Problem("csv_years", {"years": cells[columns["years"]].strip(),
                                                "first": FIRST_YEAR, "last": LAST_YEAR}))
        if code in first_line:
            errors.append(Problem("csv_duplicate", {"code": code, "other": first_line[code]}))
        first_line.setdefault(code, index)
        if errors or years is None:
            problems.append(_row(index, errors))
            continue
        before = existing.get(code)
        action: Action = "create"
        if before is not None:
            changed = (before.name, before.category) != (name, category) or not years <= before.years
            action = "update" if changed else "same"
        units.append(UnitRow(index, code, name, category, action, before, years))
    if problems:
        raise invalid_with(problems)
    if not units:
        raise invalid_with([Problem("csv_empty")])
    return units


def _row(line: int, errors: list[Problem]) -> Problem:
    # The row's problems stay values: rendered in the reader's language, joined by its semicolon.
    return Problem("csv_row", {"line": line, "error": errors})
