"""Results for the main scoring system (JSON, CSV, XLSX), the year overview, the composite grade,
the audit export. Thin: app.store reads, app.export and friends render.

An API key with the ``export`` scope reads results and nothing else; ``admin`` does everything.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app import recount, sheets, store
from app.auth import Principal
from app.composite import composite
from app.errors import Invalid
from app.export import decode_cursor, encode_cursor, groups_table, points_table, results_table
from app.overview import build_overview
from app.routes.access import Admin, require
from app.routes.deps import SessionDep, SettingsDep
from app.schemas import (
    RESULT_SCHEMA_VERSION,
    CompositeBody,
    CompositePublic,
    ErrorBody,
    OverviewPage,
    ResultPage,
    ResultRecord,
)

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (401, 403, 404, 409, 422)}
CSV_MIME = "text/csv; charset=utf-8"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
RESULT_FILTERS = ("year", "category", "unit", "since", "cursor", "limit", "format", "table")
TABLES = ("results", "points", "groups")

router = APIRouter(prefix="/api/v1", responses=ERRORS)

# Admin or an export-scoped key; a signed-in organizer uses the pages instead.
Exporter = Annotated[Principal, Depends(require("admin", "export"))]


def refuse_unknown(request: Request, names: tuple[str, ...]) -> None:
    """Query parameters other than ``names`` are refused: a misspelt filter must not widen a query.
    Called in the route, so that a request without a key hears 401 first."""
    unknown = sorted(set(request.query_params) - set(names))
    if unknown:
        raise Invalid("results_unknown_filter", names=", ".join(unknown), allowed=", ".join(names))


def wanted_format(request: Request, given: str | None) -> str:
    if given is not None:
        if given not in ("json", "csv", "xlsx"):
            raise Invalid("results_format", format=given)
        return given
    accept = request.headers.get("accept", "")
    if "text/csv" in accept:
        return "csv"
    if XLSX_MIME in accept:
        return "xlsx"
    return "json"


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _file_name(year: int | None, category: str | None, unit: str | None, extension: str) -> str:
    parts = ["results", *(str(p) for p in (year, category, unit) if p is not None)]
    return "-".join(parts) + "." + extension


@router.get(
    "/results",
    tags=["results export"],
    response_model=ResultPage,
    responses={
        200: {
            "description": "JSON by default; CSV (UTF-8 with BOM) or XLSX by format= or the Accept header",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX_MIME: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def list_results(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: Exporter,
    year: int | None = None,
    category: str | None = None,
    unit: Annotated[str | None, Query(description="a unit code")] = None,
    since: Annotated[
        dt.datetime | None, Query(description="only results closed after this time (ISO 8601; UTC if no zone)")
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description=f"JSON pages default to {DEFAULT_PAGE}")] = None,
    format: Annotated[str | None, Query(description="json, csv or xlsx; overrides Accept")] = None,
    table: Annotated[str, Query(description="CSV only: results, points or groups")] = "results",
) -> Response | ResultPage:
    """Every closed meeting's frozen result (its latest version), in the order of closing.

    Page with `cursor`: results are numbered in the order they were frozen, whichever server froze
    them, so a cursor neither repeats nor skips one when more meetings close meanwhile; keep the
    last page's cursor and ask again to get only what is new. `since` compares `closed_at`, the
    database's clock at the close: pass a minute before the largest `closed_at` you hold and keep
    results by (meeting_id, result_version), since two closes of that minute may commit in either
    order. A cursor made before the upgrade that numbered results answers 422
    `results_cursor_old`: start again from the first page. A reopened meeting drops out until it
    closes again, as a new `result_version`; the webhook `meeting.reopened` says so at once.
    CSV and XLSX hold every matching result unless `limit` is given; then the header
    `X-Next-Cursor` carries the cursor.
    """
    refuse_unknown(request, RESULT_FILTERS)
    kind = wanted_format(request, format)
    if table not in TABLES:
        raise Invalid("results_table", table=table, allowed=", ".join(TABLES))
    page = limit or (DEFAULT_PAGE if kind == "json" else None)
    numbered = store.results_page(
        session=session,
        year=year,
        category=category,
        unit=unit,
        since=_utc(since),
        after=decode_cursor(cursor) if cursor is not None else None,
        limit=page + 1 if page is not None else None,
    )
    next_cursor = None
    if page is not None and len(numbered) > page:
        numbered = numbered[:page]
        next_cursor = encode_cursor(numbered[-1][0])
    records = [record for _, record in numbered]
    if kind == "json":
        return ResultPage(results=records, next_cursor=next_cursor)
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    tables = {"results": results_table(records, settings.zone), "points": points_table(records),
              "groups": groups_table(records)}
    if kind == "csv":
        body, media = sheets.to_csv(tables[table]), CSV_MIME
    else:
        body, media = sheets.to_xlsx(list(tables.values())), XLSX_MIME
    name = _file_name(year, category, unit, kind if kind == "xlsx" else f"{table}.csv")
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(body, media_type=media, headers=headers)


@router.get("/results/schema", tags=["results export"])
def result_schema(_: Exporter) -> dict[str, Any]:
    """The JSON Schema of one result (`ResultRecord`), versioned by `schema_version`."""
    schema = ResultRecord.model_json_schema()
    schema["$id"] = f"onsite-ballot/result/v{RESULT_SCHEMA_VERSION}"
    return schema


@router.get("/overview", tags=["results export"])
def overview(
    request: Request, session: SessionDep, _: Exporter, year: int, category: str | None = None
) -> OverviewPage:
    """Each unit: on-site review this year and the two before, this year's score and rank in its
    category; `overdue` units have had none in those three years."""
    refuse_unknown(request, ("year", "category"))
    units = store.overview_units(session=session, year=year, category=category)
    return build_overview(year=year, category=category, units=units)


@router.post("/composite", tags=["results export"])
def composite_grade(body: CompositeBody, session: SessionDep, _: Exporter) -> CompositePublic:
    """The party-building grade: the frozen on-site score × 40% + inspections × 30% + key tasks × 30%
    (weights configurable, summing to 1), exact and rounded."""
    record = store.unit_year_result(session=session, unit_code=body.unit_code, year=body.year)
    return composite(body, record)


# ---- audit export -----------------------------------------------------------------------------


@router.get(
    "/meetings/{meeting_id}/audit",
    tags=["audit"],
    responses={200: {"content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}}},
)
def audit_export(
    meeting_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    format: str = "json",
) -> Response:
    """A closed meeting's raw ballots, shuffled, without ids, with the digest and everything needed
    to recompute the result: `onsite-ballot recount FILE`."""
    refuse_unknown(request, ("format",))
    if format not in ("json", "csv"):
        raise Invalid("results_format", format=format)
    material = store.audit_material(session=session, actor=principal.name, meeting_id=meeting_id)
    file = recount.build_audit_file(
        meeting=material.meeting,
        result=material.result,
        template=material.template,
        ballots=material.ballots,
        k=settings.k_anonymity,
        earlier=material.earlier,
    )
    name = f"audit-meeting-{meeting_id}-v{material.result.version}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if format == "csv":
        return Response(recount.to_csv(file), media_type=CSV_MIME, headers=headers)
    return Response(recount.to_json(file), media_type="application/json", headers=headers)
