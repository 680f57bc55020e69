"""The versioned JSON shapes that other systems build against: results, webhooks, overview, audit.

``RESULT_SCHEMA_VERSION`` changes when a field of a result changes meaning or goes away; a field
may be added within a version. Every record and webhook body says which version it follows.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field as PydanticField, field_validator
from pydantic_core import PydanticCustomError

from app.models import ApiModel, Figure, FiguresPublic, GroupFigure, GroupPublic, ItemFigure, UtcDateTime

RESULT_SCHEMA_VERSION: Final = 1
AUDIT_FORMAT: Final = "onsite-ballot/audit/v1"
WebhookEvent = Literal["meeting.closed", "meeting.reopened", "meeting.voided"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("meeting.closed", "meeting.reopened", "meeting.voided")
ExportFormat = Literal["json", "csv", "xlsx"]


def _as_enum(schema: dict[str, Any]) -> None:
    # {"const": 1} as {"enum": [1]}: the same constraint, and one that client generators read
    # (openapi-python-client 0.29 writes `!= 1and` for an integer const, which does not compile).
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]


SchemaVersion = Annotated[Literal[1], PydanticField(json_schema_extra=_as_enum)]

_POINT_EXAMPLE = {
    "id": "p01", "name": "履行第一责任人职责", "max": "6", "average": {"rounded": "4.65", "exact": "4.65"}
}
RESULT_EXAMPLE: dict[str, Any] = {
    "schema_version": 1,
    "unit_code": "JL001",
    "unit_name": "省直机关事务管理局",
    "category": "party_gov",
    "category_name": "党政机关",
    "year": 2026,
    "meeting_id": 2,
    "meeting_date": "2026-12-03",
    "meeting_title": "2026年度党建工作述职评议会",
    "template_id": "default",
    "template_version": 1,
    "result_version": 1,
    "digest": "9f2c6a0d3b1e4f5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b",
    "closed_at": "2026-12-03T03:41:07.512000Z",
    "status": "ok",
    "ballots": 10,
    "counted": 8,
    "dropped": 2,
    "flagged": 9,
    "excluded_flagged": 0,
    "score": {"rounded": "79.85", "exact": "79.85"},
    "component": {"rounded": "31.94", "exact": "31.94"},
    "component_weight": "0.4",
    "total_sum": "638.8",
    "items": [
        {
            "id": "i1",
            "name": "一、履行主体责任",
            "max": "20",
            "average": {"rounded": "15.85", "exact": "15.85"},
            "points": [_POINT_EXAMPLE],
        }
    ],
    "groups": [
        {"key": "representatives", "name": "党员群众代表", "weight": None, "ballots": 6,
         "score": {"rounded": "83.33", "exact": "250/3"}},
    ],
}


class ResultRecord(BaseModel):
    """A closed meeting's frozen result, as the main scoring system receives it (schema version 1).

    Numbers are strings: ``rounded`` is rounded half up to 2 places; ``exact`` parses with Python's
    ``fractions.Fraction`` (or any rational type) unchanged — a terminating decimal like "79.85",
    or "p/q" like "280/3" when the decimal does not terminate. The per-item and per-point averages
    are over the same ballots as the score and add up to it exactly. A rater group appears only
    when it has at least K ballots.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [RESULT_EXAMPLE]})

    schema_version: SchemaVersion = RESULT_SCHEMA_VERSION
    unit_code: str
    unit_name: str
    category: str
    category_name: str
    year: int
    meeting_id: int
    meeting_date: dt.date
    meeting_title: str
    template_id: str
    template_version: int
    result_version: int = PydanticField(description="1 at the first close; each re-close after a reopen adds 1")
    digest: str = PydanticField(
        description="SHA-256 of everything the result depends on (ballots, template, rules, earlier versions,"
        " unit), recomputable from the audit export (README, \"The digest\")"
    )
    digest_format: int = PydanticField(default=2, description="2 since 2026-12-02; 1: the ballots alone")
    closed_at: UtcDateTime
    status: Literal["ok", "no_ballots", "too_few", "insufficient"]
    ballots: int = PydanticField(description="every ballot in the box")
    counted: int = PydanticField(description="ballots that entered the mean")
    dropped: int = PydanticField(description="ballots dropped by the trim rule (highest and lowest)")
    flagged: int = PydanticField(description="ballots that answered every point the same way")
    excluded_flagged: int
    score: Figure | None
    component: Figure | None = PydanticField(description="the on-site component: score × component_weight")
    component_weight: str
    total_sum: str = PydanticField(description="sum of the counted ballots' totals, exact")
    items: list[ItemFigure]
    groups: list[GroupFigure]


class ResultPage(BaseModel):
    schema_version: SchemaVersion = RESULT_SCHEMA_VERSION
    results: list[ResultRecord]
    next_cursor: str | None = PydanticField(
        description="pass as cursor= for the next page; null on the last page"
    )


class WebhookBody(BaseModel):
    """What a webhook receiver gets. The same delivery_id comes again on a retry or a resend."""

    schema_version: SchemaVersion = RESULT_SCHEMA_VERSION
    event: WebhookEvent
    delivery_id: str
    occurred_at: UtcDateTime
    result: ResultRecord = PydanticField(
        description="meeting.closed: the new result; meeting.reopened: the result that no longer stands"
    )


class WebhookCreate(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://scoring.example.gov.cn/hooks/onsite", "secret": "a-long-random-shared-secret",
                 "events": ["meeting.closed", "meeting.reopened"]}
            ]
        },
    )

    url: str = PydanticField(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2000)
    secret: str = PydanticField(min_length=16, max_length=200)
    events: list[WebhookEvent] = PydanticField(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1)

    @field_validator("url")
    @classmethod
    def _readable_address(cls, value: str) -> str:
        # The pattern lets through what cannot be sent to: an IPv6 bracket left open ("http://["), a port
        # out of range. Found by the schemathesis run as a 500.
        try:
            parts = urlsplit(value)
            readable = bool(parts.hostname) and (parts.port is None or parts.port > 0)
        except ValueError:
            readable = False
        if not readable:
            raise PydanticCustomError("webhook_url_unreadable", "not an address a request can be sent to")
        return value


class WebhookPublic(BaseModel):
    """An endpoint as listed: never its secret."""

    id: int
    url: str
    events: list[WebhookEvent]
    created_at: UtcDateTime


class AttemptPublic(BaseModel):
    number: int
    at: UtcDateTime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
    id: str
    endpoint_id: int
    event: WebhookEvent
    meeting_id: int
    result_version: int
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: UtcDateTime | None = PydanticField(description="null once delivered, failed or cancelled")
    created_at: UtcDateTime
    delivered_at: UtcDateTime | None
    last_status_code: int | None
    log: list[AttemptPublic]


class OverviewUnit(BaseModel):
    unit_code: str
    unit_name: str
    category: str
    category_name: str
    reviewed: dict[int, bool] = PydanticField(
        description="year -> whether the unit had an on-site review that year (this year and the two before): a"
        " closed meeting, or a year recorded from before the service"
    )
    meeting_id: int | None = PydanticField(description="this year's latest closed meeting")
    score: Figure | None
    component: Figure | None
    rank: int | None = PydanticField(description="within the category by exact score, 1 is best; ties share a rank")
    overdue: bool = PydanticField(
        description="no on-site review this year nor in the two years before, none in progress, and the unit's"
        " history is known (history_known)"
    )
    history_known: bool = PydanticField(
        description="the service has known the unit since the window began, or reviews of it are recorded;"
        " false for a unit added this year without past years, which is never overdue"
    )


class OverviewPage(BaseModel):
    year: int
    category: str | None
    years: list[int]
    units: list[OverviewUnit]
    overdue: list[str] = PydanticField(description="codes of the units with no on-site review in three years")


class CompositeWeights(ApiModel):
    onsite: str = PydanticField(default="0.4", pattern=r"^(0(\.\d{1,6})?|1(\.0{1,6})?)$")
    inspection: str = PydanticField(default="0.3", pattern=r"^(0(\.\d{1,6})?|1(\.0{1,6})?)$")
    key_tasks: str = PydanticField(default="0.3", pattern=r"^(0(\.\d{1,6})?|1(\.0{1,6})?)$")


class CompositeBody(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"unit_code": "JL001", "year": 2026, "inspection": "88.5", "key_tasks": "92"}]
        },
    )

    unit_code: str
    year: int = PydanticField(ge=2000, le=2100)
    inspection: str = PydanticField(description="the inspections component, 0 to 100, as a decimal string")
    key_tasks: str = PydanticField(description="the key-tasks component, 0 to 100, as a decimal string")
    weights: CompositeWeights = PydanticField(default_factory=CompositeWeights)


class CompositePart(BaseModel):
    score: Figure = PydanticField(description="out of 100")
    weight: str
    weighted: Figure


class CompositePublic(BaseModel):
    unit_code: str
    year: int
    meeting_id: int
    result_version: int
    digest: str
    onsite: CompositePart
    inspection: CompositePart
    key_tasks: CompositePart
    grade: Figure = PydanticField(description="the party-building grade out of 100: the sum of the weighted parts")


class AuditMeeting(BaseModel):
    id: int
    unit_code: str
    unit_name: str
    category: str
    year: int
    date: dt.date
    title: str


class AuditPublished(BaseModel):
    version: int
    digest: str
    digest_format: int = PydanticField(
        default=1,
        description="2: the digest covers the ballots, the template, the rules, the earlier versions and the"
        " unit (README, \"The digest\"); 1: the ballots alone (results frozen before 2026-12-02)",
    )
    closed_at: UtcDateTime
    figures: FiguresPublic


class AuditGroupCount(BaseModel):
    group: str | None
    ballots: int


class AuditBreakdown(BaseModel):
    """A version published before this one: its rater groups' counts and the groups it showed apart."""

    counts: list[AuditGroupCount]
    shown: list[str | None]


class AuditRules(BaseModel):
    trim: int
    k: int
    component_weight: str
    flagged_rule: Literal["count", "exclude"]
    groups: list[GroupPublic]
    earlier_versions: list[AuditBreakdown] = PydanticField(
        default_factory=list,
        description="what the versions before this one showed of the rater groups: a group is shown apart only"
        " when no part of the breakdown changed by fewer than K ballots since them",
    )


class AuditBallot(BaseModel):
    group: str | None
    answers: dict[str, str]
    comment: str | None = None


class AuditFile(BaseModel):
    """Everything needed to recompute a closed meeting's result without the server."""

    format: Literal["onsite-ballot/audit/v1"] = AUDIT_FORMAT
    meeting: AuditMeeting
    published: AuditPublished
    rules: AuditRules
    template: dict[str, Any]
    ballots: list[AuditBallot] = PydanticField(description="shuffled; no ids, no order of submission")
