"""Excel and CSV downloads for the organizer: a meeting's result, the results of a year, the year
overview. The same records and sheets as the API's exports (GET /api/v1/results, /overview), for a
signed-in organizer, limited to the categories they may see."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app import sheets, store
from app.export import groups_table, overview_table, points_table, results_table
from app.routes.access import Reader, seen_meeting
from app.routes.console import render
from app.routes.deps import SessionDep, SettingsDep
from app.routes.results import CSV_MIME, XLSX_MIME
from app.routes.views import visible_overview
from app.schemas import ResultRecord

router = APIRouter(include_in_schema=False)

Format = Literal["xlsx", "csv"]


def _download(body: bytes, kind: Format, name: str) -> Response:
    media = XLSX_MIME if kind == "xlsx" else CSV_MIME
    # No caching: results are for those signed in, and a reopened meeting changes them.
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"',
                                                     "Cache-Control": "no-store"})


def _visible_results(
    session: SessionDep, principal: Reader, year: int | None, category: str | None, meeting: int | None
) -> list[ResultRecord]:
    if meeting is not None:
        seen_meeting(session, principal, meeting)  # 403 for another category, 404 for none
    records = store.list_results(session=session, year=year, category=category or None)
    return [r for r in records if principal.sees(r.category) and (meeting is None or r.meeting_id == meeting)]


@router.get("/results")
def results_page(request: Request, session: SessionDep, principal: Reader, year: int | None = None,
                 category: str = "") -> HTMLResponse:
    """Every closed meeting's frozen result the organizer may see, with the downloads."""
    year = year or dt.date.today().year
    visible = [c for c in store.categories(session=session) if principal.sees(c.key)]
    chosen = category if category in {c.key for c in visible} else ""
    records = _visible_results(session, principal, year, chosen, None)
    query = f"year={year}" + (f"&amp;category={chosen}" if chosen else "")
    return render(request, "organizer/results.html", principal, records=records, year=year, category=chosen,
                  categories=visible, query=query)


@router.get("/exports/results.{kind}")
def export_results(kind: Format, session: SessionDep, settings: SettingsDep, principal: Reader,
                   year: int | None = None, category: str = "", meeting: int | None = None) -> Response:
    records = _visible_results(session, principal, year, category, meeting)
    if kind == "csv":
        body = sheets.to_csv(results_table(records, settings.zone))
    else:
        body = sheets.to_xlsx([results_table(records, settings.zone), points_table(records), groups_table(records)])
    name = f"results-meeting-{meeting}" if meeting is not None else "-".join(
        ["results", *(str(part) for part in (year, category) if part)])
    return _download(body, kind, name)


@router.get("/exports/overview.{kind}")
def export_overview(kind: Format, session: SessionDep, principal: Reader, year: int,
                    category: str = "") -> Response:
    table = overview_table(visible_overview(session, principal, year, category))
    body = sheets.to_csv(table) if kind == "csv" else sheets.to_xlsx([table])
    return _download(body, kind, "-".join(["overview", str(year), *([category] if category else [])]))
