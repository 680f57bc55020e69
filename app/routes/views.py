"""View models: what a page shows, computed once, for the page and for its JSON twin.

The dashboard (page, fragment, projector) and GET /api/v1/meetings/{id}/tally read the same
published figures; the feedback report is one ``FeedbackReport`` for its page and its JSON; the
year overview is one for its page and its download; the ballot page's items are built here from
the template and the rater's answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from app import store
from app.auth import Principal
from app.charts import Bar, bar_chart
from app.errors import Invalid
from app.i18n import Lang
from app.overview import build_overview
from app.report import FeedbackReport, feedback_report
from app.routes.pages import plain
from app.schemas import FiguresPublic, OverviewPage, TallyPublic
from app.templates import BallotTemplate

# ---- the live tally ----------------------------------------------------------------------------


class LiveState(BaseModel):
    """What a dashboard needs to decide whether to redraw: turnout, and which figures are published."""

    meeting_id: int
    state: str
    ballots_counted: int
    tokens_issued: int
    attendance: int
    published_at_count: int


def live_state(session: Session, meeting_id: int) -> LiveState:
    view = store.tally(session=session, meeting_id=meeting_id)
    return LiveState(
        meeting_id=meeting_id,
        state=view.meeting.state,
        ballots_counted=view.counted,
        tokens_issued=view.issued,
        attendance=view.meeting.attendance,
        published_at_count=view.tally.published_count,
    )


def _published(session: Session, view: store.TallyView, k: int) -> FiguresPublic | None:
    published = store.published_figures(session=session, meeting=view.meeting, row=view.tally, k=k)
    return FiguresPublic.model_validate_json(published) if published else None


def tally_public(session: Session, meeting_id: int, k: int) -> TallyPublic:
    """The dashboard's JSON twin: turnout and the figures as last published."""
    view = store.tally(session=session, meeting_id=meeting_id)
    return TallyPublic(
        meeting_id=meeting_id,
        state=view.meeting.state,
        attendance=view.meeting.attendance,
        tokens_issued=view.issued,
        ballots_counted=view.counted,
        k=k,
        published_at_count=view.tally.published_count,
        figures=_published(session, view, k),
    )


def dashboard_view(session: Session, meeting_id: int, k: int) -> dict[str, Any]:
    view = store.tally(session=session, meeting_id=meeting_id)
    meeting, tally, issued = view.meeting, view.tally, view.issued
    unit, category = store.unit_of(session=session, meeting=meeting)
    figures = _published(session, view, k)
    charts: dict[str, str] = {}
    if figures is not None and figures.score is not None:
        charts["items"] = bar_chart(
            [
                Bar(item.name, Decimal(item.average.rounded), Decimal(item.max), f"{item.average.rounded} / {item.max}")
                for item in figures.items
            ],
            title="各测评项目平均得分",
        )
        charts["points"] = bar_chart(
            [
                Bar(
                    f"{point.id} {point.name}",
                    Decimal(point.average.rounded),
                    Decimal(point.max),
                    f"{point.average.rounded} / {point.max}",
                )
                for item in figures.items
                for point in item.points
            ],
            title="各测评要点平均得分",
        )
    if figures is not None and figures.distribution and figures.ballots >= k:
        most = max(bin.count for bin in figures.distribution) or 1
        charts["distribution"] = bar_chart(
            [
                Bar(f"{bin.label} 分", Decimal(bin.count), Decimal(most), f"{bin.count} 张")
                for bin in figures.distribution
            ],
            title="测评票总分分布",
        )
    comments = store.meeting_comments(session=session, meeting_id=meeting_id) if meeting.state == "closed" else []
    return {
        "meeting": meeting,
        "unit": unit,
        "category": category,
        "tally": tally,
        "counted": view.counted,
        "issued": issued,
        "figures": figures,
        "charts": charts,
        "k": k,
        "comments": comments,
        # The figures move when 2K ballots wait sealed, and then take all but K of them.
        "next_step": tally.published_count + 2 * k if meeting.state != "closed" else None,
    }


# ---- the feedback report -----------------------------------------------------------------------


def build_report(session: Session, meeting_id: int, k: int) -> FeedbackReport:
    result = store.latest_result(session=session, meeting_id=meeting_id)
    meeting = store.get_meeting(session=session, meeting_id=meeting_id)
    # The unit as the result names it, frozen at close (a rename later changes no report).
    category_names = {c.key: c.name for c in store.categories(session=session)}
    return feedback_report(
        own=FiguresPublic.model_validate_json(result.figures),
        peers=store.peer_results(session=session, meeting=meeting),
        k=k,
        comments=store.meeting_comments(session=session, meeting_id=meeting_id),
        meeting_id=meeting_id, unit_code=result.unit_code, unit_name=result.unit_name,
        category=category_names[result.category],
        year=meeting.year, title=meeting.title, result_version=result.version, digest=result.digest,
        closed_at=result.created_at,
    )


# ---- the year overview -------------------------------------------------------------------------


def visible_overview(session: Session, principal: Principal, year: int, category: str) -> OverviewPage:
    """The year overview as this principal may see it: the console's page and its download."""
    visible = [c.key for c in store.categories(session=session) if principal.sees(c.key)]
    chosen = category if category in visible else None
    if category and chosen is None:
        raise Invalid("unit_unknown_category", category=category, allowed="/".join(visible))
    page = build_overview(year=year, category=chosen,
                          units=store.overview_units(session=session, year=year, category=chosen))
    units = [unit for unit in page.units if principal.sees(unit.category)]
    return page.model_copy(update={"units": units, "overdue": [u.unit_code for u in units if u.overdue]})


# ---- the ballot --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeView:
    key: str
    label: str
    score: str
    checked: bool


@dataclass(frozen=True)
class PointView:
    id: str
    number: int
    name: str
    max: str
    grades: list[GradeView]
    value: str
    problem: str


@dataclass(frozen=True)
class ItemView:
    name: str
    max: str
    points: list[PointView]


def ballot_view(
    template: BallotTemplate, lang: Lang, answers: Mapping[str, Any], problems: Mapping[str, str]
) -> list[ItemView]:
    items = []
    number = 0
    for item in template.items:
        points = []
        for point in item.points:
            number += 1
            given = answers.get(point.id)
            given = given.strip() if isinstance(given, str) else ""
            grades = []
            if template.input_of(point) == "grades":
                grades = [
                    GradeView(
                        key=grade.key,
                        label=(grade.label_en or grade.label) if lang == "en" else grade.label,
                        score=plain(grade.fraction * point.max),
                        checked=template.grade_key(given) == grade.key,
                    )
                    for grade in template.grades
                ]
            points.append(
                PointView(
                    id=point.id, number=number,
                    name=(point.name_en or point.name) if lang == "en" else point.name,
                    max=plain(point.max), grades=grades, value="" if grades else given,
                    problem=problems.get(point.id, ""),
                )
            )
        items.append(
            ItemView(
                name=(item.name_en or item.name) if lang == "en" else item.name,
                max=plain(sum((point.max for point in item.points), Decimal(0))),
                points=points,
            )
        )
    return items
