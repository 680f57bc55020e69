"""Reading a unit list that someone exported from Excel. Pure."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass

from app import text
from app.errors import Problem, invalid_with

HEADER = ("code", "name", "category")
MAX_CODE = 32
MAX_NAME = 128


@dataclass(frozen=True)
class UnitRow:
    line: int
    code: str
    name: str
    category: str


def parse_units_csv(data: bytes, *, categories: Collection[str], taken_codes: Collection[str] = ()) -> list[UnitRow]:
    """All rows, or Invalid naming every bad row by its line number: nothing half-imported."""
    try:
        # utf-8-sig drops the byte-order mark Excel puts at the front of "CSV UTF-8".
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid_with([Problem("csv_encoding")]) from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return _parse_rows(rows, categories=categories, taken_codes=taken_codes)


def parse_units_xlsx(
    data: bytes, *, categories: Collection[str], taken_codes: Collection[str] = ()
) -> list[UnitRow]:
    """The first sheet of a workbook, read like the CSV: same header, same rules, same line numbers."""
    from openpyxl import load_workbook  # only needed for spreadsheets

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise invalid_with([Problem("xlsx_unreadable")]) from None
    sheet = workbook.worksheets[0]
    rows = [["" if cell is None else str(cell) for cell in row] for row in sheet.iter_rows(values_only=True)]
    workbook.close()
    # Spreadsheets pad rows with empty cells to the widest row; trim them back.
    rows = [row[: max((i + 1 for i, cell in enumerate(row) if cell.strip()), default=0)] for row in rows]
    return _parse_rows(rows, categories=categories, taken_codes=taken_codes)


XLSX_MAGIC = b"PK\x03\x04"


def parse_units_file(
    data: bytes, *, categories: Collection[str], taken_codes: Collection[str] = ()
) -> list[UnitRow]:
    """CSV or XLSX, told apart by content rather than by a file name the user may have changed."""
    parse = parse_units_xlsx if data.startswith(XLSX_MAGIC) else parse_units_csv
    return parse(data, categories=categories, taken_codes=taken_codes)


def _parse_rows(
    rows: list[list[str]], *, categories: Collection[str], taken_codes: Collection[str]
) -> list[UnitRow]:
    if not rows:
        raise invalid_with([Problem("csv_empty")])
    header = tuple(cell.strip().lower() for cell in rows[0])
    if header != HEADER:
        raise invalid_with([Problem("csv_header", {"header": ",".join(rows[0])})])
    problems: list[Problem] = []
    units: list[UnitRow] = []
    first_line: dict[str, int] = {}
    allowed = "/".join(categories)
    for index, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # Excel leaves blank lines at the end
        if len(cells) != len(HEADER):
            problems.append(_row(index, [Problem("csv_columns", {"expected": len(HEADER), "count": len(cells)})]))
            continue
        code, name, category = (cell.strip() for cell in cells)
        errors = []
        if not code or len(code) > MAX_CODE:
            errors.append(Problem("csv_code_length", {"max": MAX_CODE}))
        elif text.has_control(code):
            errors.append(Problem("text_control", {"field": "code"}))
        if not name or len(name) > MAX_NAME:
            errors.append(Problem("csv_name_length", {"max": MAX_NAME}))
        elif text.has_control(name):
            errors.append(Problem("text_control", {"field": "unit_name"}))
        if category not in categories:
            errors.append(Problem("unit_unknown_category", {"category": category, "allowed": allowed}))
        if code in first_line:
            errors.append(Problem("csv_duplicate", {"code": code, "other": first_line[code]}))
        elif code in taken_codes:
            errors.append(Problem("unit_code_taken", {"code": code}))
        first_line.setdefault(code, index)
        if errors:
            problems.append(_row(index, errors))
        else:
            units.append(UnitRow(index, code, name, category))
    if problems:
        raise invalid_with(problems)
    if not units:
        raise invalid_with([Problem("csv_empty")])
    return units


def _row(line: int, errors: list[Problem]) -> Problem:
    # The row's problems stay values: rendered in the reader's language, joined by its semicolon.
    return Problem("csv_row", {"line": line, "error": errors})
