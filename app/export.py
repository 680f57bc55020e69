"""Figures as people and machines read them: rounded and exact side by side. Pure."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from app.errors import Invalid, Problem
from app.localtime import local_text, zone_label
from app.messages import Listing
from app.schemas import Figure, FiguresPublic, GroupFigure, ItemFigure, OverviewPage, PointFigure, ResultRecord
from app.scoring import Figures, GroupSpec, exact, round_half_up
from app.tables import Category, Meeting, Result
from app.templates import BallotTemplate


def figure(value: Fraction | Decimal) -> Figure:
    return Figure(rounded=str(round_half_up(value)), exact=exact(value))


def _plain(value: Decimal) -> str:
    return exact(value)


def figures_public(
    template: BallotTemplate,
    figures: Figures,
    groups: Sequence[GroupSpec],
    component_weight: Decimal,
    lang: str = "zh",
) -> FiguresPublic:
    """The one rendering of a meeting's figures, used by the tally, the result and the pages."""
    items = []
    for item in template.items:
        points = [
            PointFigure(
                id=point.id,
                name=point.name,
                max=_plain(point.max),
                average=figure(figures.point_averages[point.id]),
            )
            for point in item.points
            if point.id in figures.point_averages
        ]
        if item.id in figures.item_averages:
            items.append(
                ItemFigure(
                    id=item.id,
                    name=item.name,
                    max=_plain(sum((point.max for point in item.points), Decimal(0))),
                    average=figure(figures.item_averages[item.id]),
                    points=points,
                )
            )
    weights = {spec.key: spec.weight for spec in groups}
    group_figures = [
        GroupFigure(
            key=group.key,
            name=group.name,
            weight=_plain(weights[group.key]) if weights.get(group.key) is not None else None,  # type: ignore[arg-type]
            # Below K neither the score nor even the head count of a group is shown.
            ballots=group.ballots if group.score is not None else None,
            score=figure(group.score) if group.score is not None else None,
        )
        for group in figures.groups
    ]
    message = None
    if figures.status == "insufficient":
        message = Problem("figures_insufficient", {"groups": Listing(figures.insufficient_groups)}).message(lang)
    elif figures.status == "too_few":
        message = Problem("figures_too_few").message(lang)
    elif figures.status == "no_ballots":
        message = Problem("figures_no_ballots").message(lang)
    return FiguresPublic(
        ballots=figures.ballots,
        counted=figures.counted,
        dropped=figures.dropped,
        flagged=figures.flagged,
        excluded_flagged=figures.excluded_flagged,
        status=figures.status,
        message=message,
        score=figure(figures.score) if figures.score is not None else None,
        component=figure(figures.component) if figures.component is not None else None,
        component_weight=_plain(component_weight),
        total_sum=_plain(figures.total_sum),
        items=items,
        groups=group_figures,
    )


# ---- results export --------------------------------------------------------------------------

# A spreadsheet cell: text, a count, or a rounded figure (a number in XLSX, exact in CSV).
Cell = str | int | Decimal | None


def result_record(*, meeting: Meeting, category: Category, result: Result) -> ResultRecord:
    """A frozen result as other systems receive it: the unit as it stood at close (``category`` is
    the result's own category). Small groups stay hidden, as at close."""
    figures = FiguresPublic.model_validate_json(result.figures)
    return ResultRecord(
        unit_code=result.unit_code,
        unit_name=result.unit_name,
        category=result.category,
        category_name=category.name,
        year=meeting.year,
        meeting_id=meeting.id,
        meeting_date=meeting.date,
        meeting_title=meeting.title,
        template_id=meeting.template_id,
        template_version=meeting.template_version,
        result_version=result.version,
        digest=result.digest,
        digest_format=result.digest_format,
        closed_at=result.created_at,
        status=figures.status,
        ballots=figures.ballots,
        counted=figures.counted,
        dropped=figures.dropped,
        flagged=figures.flagged,
        excluded_flagged=figures.excluded_flagged,
        score=figures.score,
        component=figures.component,
        component_weight=figures.component_weight,
        total_sum=figures.total_sum,
        items=figures.items,
        groups=[group for group in figures.groups if group.ballots is not None],
    )


@dataclass(frozen=True)
class Table:
    """One sheet: a bilingual title, bilingual headers, rows."""

    title: str
    headers: list[str]
    rows: list[list[Cell]]


def _headers(columns: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{zh} {en}" for zh, en in columns]


def _rounded(value: Figure | None) -> Decimal | None:
    return Decimal(value.rounded) if value is not None else None


def _exact(value: Figure | None) -> str | None:
    return value.exact if value is not None else None


RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("单位编码", "Unit code"),
    ("单位名称", "Unit name"),
    ("类别代码", "Category key"),
    ("类别", "Category"),
    ("年度", "Year"),
    ("评议会编号", "Meeting ID"),
    ("评议会日期", "Meeting date"),
    ("评议会名称", "Meeting title"),
    ("测评票模板", "Template"),
    ("模板版本", "Template version"),
    ("结果版本", "Result version"),
    ("结束时间（{zone}）", "Closed at ({key})"),
    ("状态", "Status"),
    ("测评票总数", "Ballots"),
    ("计入票数", "Ballots counted"),
    ("去掉最高最低分票数", "Dropped by trim"),
    ("雷同票数", "Flagged"),
    ("剔除雷同票数", "Flagged excluded"),
    ("得分", "Score"),
    ("得分精确值", "Score exact"),
    ("折算权重", "Component weight"),
    ("现场测评折算分", "On-site component"),
    ("折算分精确值", "Component exact"),
    ("计入票总分之和", "Sum of counted totals"),
    ("测评票集摘要", "Ballot-set digest"),
)
POINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("单位编码", "Unit code"),
    ("单位名称", "Unit name"),
    ("评议会编号", "Meeting ID"),
    ("结果版本", "Result version"),
    ("层级", "Level"),
    ("测评项目编号", "Item ID"),
    ("编号", "ID"),
    ("名称", "Name"),
    ("满分", "Maximum"),
    ("平均分", "Average"),
    ("平均分精确值", "Average exact"),
)
GROUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("单位编码", "Unit code"),
    ("单位名称", "Unit name"),
    ("评议会编号", "Meeting ID"),
    ("结果版本", "Result version"),
    ("评议人类别", "Rater group"),
    ("类别名称", "Group name"),
    ("权重(%)", "Weight (%)"),
    ("票数", "Ballots"),
    ("得分", "Score"),
    ("得分精确值", "Score exact"),
)


def results_table(records: Sequence[ResultRecord], zone: ZoneInfo) -> Table:
    """One row per result; the close time in ``zone``, as the people who open the sheet live."""
    rows: list[list[Cell]] = [
        [
            r.unit_code, r.unit_name, r.category, r.category_name, r.year, r.meeting_id, r.meeting_date.isoformat(),
            r.meeting_title, r.template_id, r.template_version, r.result_version,
            local_text(r.closed_at, zone, seconds=True), r.status, r.ballots, r.counted, r.dropped, r.flagged,
            r.excluded_flagged, _rounded(r.score), _exact(r.score), r.component_weight, _rounded(r.component),
            _exact(r.component), r.total_sum, r.digest,
        ]
        for r in records
    ]
    columns = [(zh.format(zone=zone_label(zone)), en.format(key=zone.key)) for zh, en in RESULT_COLUMNS]
    return Table("结果 Results", _headers(columns), rows)


def points_table(records: Sequence[ResultRecord]) -> Table:
    """Per-item and per-point averages, one row each: templates may differ between meetings."""
    rows: list[list[Cell]] = []
    for r in records:
        head: list[Cell] = [r.unit_code, r.unit_name, r.meeting_id, r.result_version]
        for item in r.items:
            rows.append([*head, "项目 item", item.id, item.id, item.name, item.max,
                         _rounded(item.average), item.average.exact])
            for point in item.points:
                rows.append([*head, "要点 point", item.id, point.id, point.name, point.max,
                             _rounded(point.average), point.average.exact])
    return Table("要点平均分 Point averages", _headers(POINT_COLUMNS), rows)


def groups_table(records: Sequence[ResultRecord]) -> Table:
    rows: list[list[Cell]] = [
        [r.unit_code, r.unit_name, r.meeting_id, r.result_version, g.key, g.name, g.weight, g.ballots,
         _rounded(g.score), _exact(g.score)]
        for r in records
        for g in r.groups
    ]
    return Table("评议人类别 Rater groups", _headers(GROUP_COLUMNS), rows)


def overview_table(page: OverviewPage) -> Table:
    """The year overview as a sheet: each unit, its reviews over three years, score, rank, overdue."""
    headers = _headers([("单位编码", "Unit code"), ("单位名称", "Unit name"), ("类别", "Category")])
    headers += [f"{year} 年已测评 Reviewed {year}" for year in page.years]
    headers += _headers([("得分", "Score"), ("现场测评得分", "On-site component"), ("类别内排名", "Rank"),
                         ("无往年记录", "No history"), ("三年未测评", "Overdue")])
    rows: list[list[Cell]] = [
        [u.unit_code, u.unit_name, u.category_name,
         *("是 yes" if u.reviewed.get(year) else "否 no" for year in page.years),
         _rounded(u.score), _rounded(u.component), u.rank,
         "否 no" if u.history_known else "是 yes", "是 yes" if u.overdue else "否 no"]
        for u in page.units
    ]
    return Table(f"年度总览 Overview {page.year}", headers, rows)


# ---- cursors ---------------------------------------------------------------------------------

# Version 1 held a close time and a meeting id; version 2 holds the result's number (Result.seq).
CURSOR_VERSION = 2


def encode_cursor(number: int) -> str:
    """An opaque position after the result numbered ``number`` in the results' order."""
    text = json.dumps({"v": CURSOR_VERSION, "s": number})
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        version = data["v"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error):
        raise Invalid("results_cursor") from None
    if version == 1:
        # Ordered by a clock that could skip results; its position means nothing in the new order.
        raise Invalid("results_cursor_old")
    number = data.get("s")
    if version != CURSOR_VERSION or not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise Invalid("results_cursor")
    return number
