"""A workbook cannot make the import take the server's memory: rows, columns, the file and what it
unpacks to are bounded, the sheet is read as a stream, and a refusal comes at once, plainly."""

from __future__ import annotations

import io
import re
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook

from app.errors import Invalid, TooLarge
from app.imports import MAX_FILE_BYTES, MAX_ROWS, MAX_UNPACKED_BYTES, parse_units_file

CATEGORIES = ["party_gov", "central", "mass_org", "enterprise"]
# What a file may cost to read, whatever it declares: the issue's file took 425 MB.
MEMORY_BUDGET = 40 * 1024 * 1024


def workbook(rows: int, dimension: str | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "name", "category"])
    for index in range(rows):
        sheet.append([f"U{index:05d}", f"单位{index}", "party_gov"])
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    return with_dimension(data, dimension) if dimension else data


def with_dimension(data: bytes, ref: str) -> bytes:
    """The same workbook, its sheet declaring the range ``ref`` (as the issue's file did)."""
    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = re.sub(rb'<dimension ref="[^"]+"', b'<dimension ref="' + ref.encode() + b'"', body)
            out.writestr(item, body)
    return target.getvalue()


def measured(call: Callable[[], Any]) -> tuple[Any, float, int]:
    """What the call returned or raised, its seconds, and the peak of memory it allocated."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome: Any = call()
    except (Invalid, TooLarge) as error:
        outcome = error
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, seconds, peak


def parse(data: bytes) -> Any:
    return parse_units_file(data, categories=CATEGORIES)


def test_the_issues_file_is_refused_at_once_and_cheaply() -> None:
    data = workbook(3_000, "A1:XFD1048576")
    assert len(data) < 64 * 1024  # small on disk, as the issue's 16.8 KB file
    outcome, seconds, peak = measured(lambda: parse(data))
    assert peak < MEMORY_BUDGET, peak
    assert seconds < 3, seconds
    assert isinstance(outcome, Invalid)
    assert [(p.code, p.message("en")) for p in outcome.problems] == [
        ("import_too_many_rows", f"The file has too many rows (at most {MAX_ROWS} units)")]


def test_a_lying_dimension_costs_nothing_when_the_rows_are_few() -> None:
    data = workbook(1_000, "A1:XFD1048576")
    units, _, peak = measured(lambda: parse(data))
    assert peak < MEMORY_BUDGET, peak
    assert [(u.line, u.code) for u in units][:2] == [(2, "U00000"), (3, "U00001")]
    assert len(units) == 1_000


def test_the_most_rows_allowed_still_import() -> None:
    units, _, peak = measured(lambda: parse(workbook(MAX_ROWS, "A1:XFD1048576")))
    assert (len(units), units[-1].line) == (MAX_ROWS, MAX_ROWS + 1)
    assert peak < MEMORY_BUDGET, peak


def test_a_cell_beyond_the_third_column_is_named() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "name", "category"])
    sheet.append(["JL001", "省委办公厅", "party_gov", None, "备注"])
    buffer = io.BytesIO()
    book.save(buffer)
    outcome, _, _ = measured(lambda: parse(buffer.getvalue()))
    assert [p.message("en") for p in outcome.problems] == ["Line 2: 5 columns where 3 are expected"]


def test_a_workbook_that_unpacks_too_large_is_refused_before_it_is_read() -> None:
    data = workbook(10)
    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            out.writestr(item, source.read(item.filename))
        out.writestr("xl/padding.xml", b" " * (MAX_UNPACKED_BYTES + 1))  # a few KB once packed
    bomb = target.getvalue()
    assert len(bomb) < MAX_FILE_BYTES
    outcome, seconds, peak = measured(lambda: parse(bomb))
    assert isinstance(outcome, Invalid)
    assert outcome.problem.code == "xlsx_too_large"
    assert peak < MEMORY_BUDGET and seconds < 1


def test_a_file_over_the_size_limit_is_413_before_it_is_parsed() -> None:
    outcome, _, _ = measured(lambda: parse(b"code,name,category\n" + b"x" * MAX_FILE_BYTES))
    assert isinstance(outcome, TooLarge)
    assert (outcome.status, outcome.message("en")) == (
        413, f"The file is too large (limit {MAX_FILE_BYTES} bytes); a unit list is far smaller")


def test_too_many_csv_rows_too() -> None:
    lines = ["code,name,category", *(f"U{i:05d},单位{i},party_gov" for i in range(MAX_ROWS + 1))]
    outcome, _, _ = measured(lambda: parse("\n".join(lines).encode()))
    assert isinstance(outcome, Invalid) and outcome.problem.code == "import_too_many_rows"


@pytest.mark.parametrize("path", ["/api/v1/units/import"])
def test_the_api_answers_413_and_422_plainly(client: TestClient, auth: dict[str, str], path: str) -> None:
    r = client.post(path, content=workbook(3_000, "A1:XFD1048576"), headers={**auth, "Content-Type": "text/csv"})
    assert (r.status_code, r.json()["detail"]) == (422, f"文件中的行数过多（最多 {MAX_ROWS} 个单位）")
    r = client.post(path, content=b"x" * (MAX_FILE_BYTES + 100 * 1024), headers={**auth, "Content-Type": "text/csv"})
    assert r.status_code == 413
    assert client.get("/api/v1/units", headers=auth).json() == []
