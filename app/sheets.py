"""Tables to files: CSV that Excel opens in Chinese, and XLSX. Pure: bytes in memory, no I/O."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter

from app.export import Cell, Table

# Excel reads a CSV as the local code page unless it starts with a byte-order mark.
UTF8_BOM = "\ufeff"
# A cell starting with one of these is a formula to a spreadsheet: a unit named "=HYPERLINK(…)"
# must stay text (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel's sheet titles are at most 31 characters.
MAX_SHEET_TITLE = 31
MAX_COLUMN_WIDTH = 40


def _text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value)
    return str(value)


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    out.write(UTF8_BOM)
    writer = csv.writer(out)
    writer.writerow(table.headers)
    writer.writerows([_csv_cell(value) for value in row] for row in table.rows)
    return out.getvalue().encode("utf-8")


def to_xlsx(tables: Sequence[Table]) -> bytes:
    """One sheet per table; rounded figures as numbers shown with 2 places, exact ones as text."""
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for table in tables:
        sheet = workbook.create_sheet(table.title[:MAX_SHEET_TITLE])
        sheet.append(table.headers)
        for row in table.rows:
            sheet.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row])
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells:
                if cell.data_type == "f":  # text that openpyxl took for a formula stays text
                    cell.data_type = "s"
                elif isinstance(cell.value, Decimal):
                    cell.number_format = "0.00"
        for index, header in enumerate(table.headers, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = min(MAX_COLUMN_WIDTH, len(header) + 4)
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
