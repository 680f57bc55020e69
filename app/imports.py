"""Reading a unit list that someone exported from Excel. Pure.

A unit list is a few hundred rows of three short columns (the province has 133 units), so
anything much larger is refused before it costs anything: the file's size, what a workbook
unpacks to, and the rows and columns read. A workbook is read as a stream (openpyxl's read-only
mode) within those bounds, whatever range its sheet declares: a 16.8 KB file declaring
A1:XFD1048576 once took 425 MB and 6 s, as openpyxl padded every row to 16,384 cells.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Collection
from dataclasses import dataclass

from app import text
from app.errors import Invalid, Problem, TooLarge, invalid_with

HEADER = ("code", "name", "category")
MAX_CODE = 32
MAX_NAME = 128
# The file as uploaded, and a workbook once unpacked (the sum of its parts as the zip declares them;
# Python's zipfile reads no part beyond its declared size).
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_UNPACKED_BYTES = 20 * 1024 * 1024
# Units in one file; and the sheet rows read in all, blank ones included, before giving up.
MAX_ROWS = 2_000
MAX_SHEET_ROWS = MAX_ROWS + 500
# Columns read from a sheet: enough to see that a row has too many; beyond them nothing is read.
MAX_COLUMNS = 26


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
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid_with([Problem("csv_encoding")]) from None
    try:
        rows = list(csv.reader(io.StringIO(decoded, newline="")))
    except csv.Error:  # a cell over csv's own field limit: no unit list has one
        raise invalid_with([Problem("csv_encoding")]) from None
    return _parse_rows(rows, categories=categories, taken_codes=taken_codes)


def parse_units_xlsx(
    data: bytes, *, categories: Collection[str], taken_codes: Collection[str] = ()
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
    return _parse_rows(rows, categories=categories, taken_codes=taken_codes)


def _check_unpacked_size(data: bytes) -> None:
    try:
        declared = sum(item.file_size for item in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, ValueError):
        raise invalid_with([Problem("xlsx_unreadable")]) from None
    if declared > MAX_UNPACKED_BYTES:
        raise Invalid("xlsx_too_large", limit=MAX_UNPACKED_BYTES)


XLSX_MAGIC = b"PK\x03\x04"


def parse_units_file(
    data: bytes, *, categories: Collection[str], taken_codes: Collection[str] = ()
) -> list[UnitRow]:
    """CSV or XLSX, told apart by content rather than by a file name the user may have changed."""
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge("import_too_large", limit=MAX_FILE_BYTES)
    parse = parse_units_xlsx if data.startswith(XLSX_MAGIC) else parse_units_csv
    return parse(data, categories=categories, taken_codes=taken_codes)


def _parse_rows(
    rows: list[list[str]], *, categories: Collection[str], taken_codes: Collection[str]
) -> list[UnitRow]:
    if not rows:
        raise invalid_with([Problem("csv_empty")])
    if sum(1 for row in rows[1:] if any(cell.strip() for cell in row)) > MAX_ROWS:
        raise invalid_with([Problem("import_too_many_rows", {"max": MAX_ROWS})])
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
