"""The JSON shapes of the API: request bodies, answers, and the versioned records other systems
build against (results, webhooks, overview, audit).

One module on purpose, over 400 lines: it is the API's contract read as one catalogue, and its
shapes nest in each other (a result record holds the figures, a webhook body a result record).
``RESULT_SCHEMA_VERSION`` changes when a field of a result changes meaning or goes away; a field
may be added within a version. Every record and webhook body says which version it follows.
A shape built from a table row has a ``from_row`` classmethod; the tables are in app.tables.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, ClassVar, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field as PydanticField, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app import text
from app.localtime import as_utc
from app.tables import Category, FlaggedRule, Meeting, MeetingState, Mode, Result, Unit, WebhookEndpoint

# A time in an API answer: ISO 8601 with the offset ("…Z"), whatever the database gave back.
UtcDateTime = Annotated[dt.datetime, AfterValidator(as_utc)]


# ---- requests and answers --------------------------------------------------------------------


class ApiModel(BaseModel):
    """A request body. No text in it may hold a control character (app.text): refused with a 422
    naming the field before anything is read further, on either database alike."""

    model_config = ConfigDict(extra="forbid")
    # The top-level fields that may hold line breaks and tabs; all other text is one line.
    PARAGRAPHS: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        where = text.first_control(data, paragraphs=cls.PARAGRAPHS)
        if where is not None:
            raise PydanticCustomError("text_control", "a control character in {path}", {"path": where})
        return data


class UnitCreate(ApiModel):
    code: str = PydanticField(min_length=1, max_length=32, examples=["JL001"])
    name: str = PydanticField(min_length=1, max_length=128, examples=["省机关事务管理局"])
    category: str = PydanticField(examples=["party_gov"])


ReviewYear = Annotated[int, PydanticField(ge=2000, le=2100)]


class UnitUpdate(ApiModel):
    name: str = PydanticField(min_length=1, max_length=128)
    category: str
    reviewed_years: list[ReviewYear] | None = PydanticField(
        default=None, description="years of on-site reviews held before this service; omitted: unchanged"
    )


class UnitPublic(BaseModel):
    code: str
    name: str
    category: str
    category_name: str
    reviewed_years: list[int] = PydanticField(default_factory=list, description="reviews recorded from before")

    @classmethod
    def from_row(cls, unit: Unit, *, category_name: str, reviewed_years: list[int]) -> UnitPublic:
        return cls(code=unit.code, name=unit.name, category=unit.category_key, category_name=category_name,
                   reviewed_years=reviewed_years)


class ImportReport(BaseModel):
    imported: int = PydanticField(description="units created or changed")
    created: int
    updated: int
    unchanged: int
    units: list[UnitPublic]


class GroupIn(ApiModel):
    key: str = PydanticField(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = PydanticField(min_length=1, max_length=64)
    weight: str | None = PydanticField(default=None, description='percent, e.g. "25"')


class GroupPublic(BaseModel):
    key: str
    name: str
    weight: str | None


class MeetingCreate(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "unit_code": "JL001",
                    "year": 2026,
                    "date": "2026-12-03",
                    "title": "2026年度党建工作述职评议会",
                    "mode": "cards",
                    "attendance": 35,
                }
            ]
        },
    )

    unit_code: str
    year: int = PydanticField(ge=2000, le=2100)
    date: dt.date
    title: str = PydanticField(min_length=1, max_length=200)
    mode: Mode = "cards"
    attendance: int = PydanticField(ge=1, le=10_000)
    template_id: str = "default"
    template_version: int | None = None
    groups: list[GroupIn] | None = None
    trim: int = PydanticField(default=1, ge=0, le=10)
    component_weight: str = PydanticField(default="0.4", pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$")
    flagged_rule: FlaggedRule = "count"

    @field_validator("title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if text.is_blank(value):
            raise PydanticCustomError("text_blank", "the title is blank")
        return value

    @model_validator(mode="after")
    def _date_in_year(self) -> Self:
        # A review of the year 2026 held in 1900 is a typing mistake, and it would sort and report wrong.
        if self.date.year != self.year:
            raise PydanticCustomError(
                "meeting_date_year", "the date is not in the year", {"date": self.date.isoformat(), "year": self.year}
            )
        return self


# The fields of a meeting that its public shape shows as the table holds them.
_MEETING_AS_STORED = (
    "id", "year", "date", "title", "template_id", "template_version", "mode", "attendance", "trim",
    "component_weight", "flagged_rule", "state",
)


class MeetingPublic(BaseModel):
    id: int
    unit_code: str
    unit_name: str
    category: str
    year: int
    date: dt.date
    title: str
    template_id: str
    template_version: int
    mode: Mode
    attendance: int
    groups: list[GroupPublic]
    trim: int
    component_weight: str
    flagged_rule: FlaggedRule
    state: MeetingState

    @classmethod
    def from_row(cls, meeting: Meeting, *, unit: Unit, category: Category) -> MeetingPublic:
        return cls.model_validate({
            **{name: getattr(meeting, name) for name in _MEETING_AS_STORED},
            "unit_code": unit.code,
            "unit_name": unit.name,
            "category": category.key,
            "groups": json.loads(meeting.groups),
        })


class CloseBody(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"risk_reason": ""}]},
    )

    risk_reason: str = PydanticField(
        default="",
        max_length=1000,
        description="closing again with fewer than K new ballots: an administrator's written reason, which names"
        " the risk that comparing the two versions shows what those ballots said (kept in the audit log)",
    )


class ReopenBody(ApiModel):
    PARAGRAPHS = frozenset({"reason"})

    reason: str = PydanticField(min_length=1, max_length=1000)


class VoidMeetingBody(ApiModel):
    PARAGRAPHS = frozenset({"reason"})

    reason: str = PydanticField(min_length=1, max_length=1000, description="why the meeting does not count (作废)")


class MintBody(ApiModel):
    count: int = PydanticField(ge=1, le=1000)
    group: str | None = None


class CardsBody(ApiModel):
    """Cards for one rater group (or none), or for several groups at once: one sheet, one print job."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"count": 40}, {"groups": {"leaders": 7, "representatives": 20}}]},
    )

    count: int | None = PydanticField(default=None, ge=1, le=1000)
    group: str | None = None
    groups: dict[str, Annotated[int, PydanticField(ge=1, le=1000)]] | None = PydanticField(
        default=None, description="cards per rater group, all on one sheet; instead of count and group"
    )

    @model_validator(mode="after")
    def _one_way(self) -> CardsBody:
        if (self.count is None) == (self.groups is None) or (self.groups is not None and self.group is not None):
            raise ValueError("give count (and optionally group), or groups")
        if self.groups is not None and not self.groups:
            raise ValueError("groups names at least one rater group")
        return self

    def batches(self) -> list[tuple[str | None, int]]:
        if self.groups is not None:
            return list(self.groups.items())
        assert self.count is not None
        return [(self.group, self.count)]


class MintedToken(BaseModel):
    code: str
    printable: str
    group: str | None
    url: str


class MintedTokens(BaseModel):
    tokens: list[MintedToken]


class BallotSubmit(BaseModel):
    """Not an ApiModel: its check over the whole body would make pydantic read the JSON twice on the
    path every phone takes. Only the comment is stored as sent (a code is normalized to its alphabet,
    an answer to a grade key or a number, anything else refused by app.templates), so only the
    comment is checked for control characters, with one search."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "token": "K7MQ2X9PAR",
                    "answers": {f"p{i:02d}": "A" for i in range(1, 20)},
                    "comment": "",
                }
            ]
        },
    )

    token: str = PydanticField(min_length=1, max_length=64)
    answers: dict[str, Any]
    # At most app.templates.COMMENT_MAX_CHARS characters, checked with the answers once the code
    # is known to be unspent: a spent code answers "already counted" whatever comes with it.
    comment: str | None = PydanticField(default=None, description="意见建议, at most 500 characters")

    @field_validator("comment")
    @classmethod
    def _comment_without_control_characters(cls, value: str | None) -> str | None:
        if value is not None and text.has_control(value, paragraph=True):
            raise PydanticCustomError("text_control", "a control character in the comment")
        return value


class BallotReceipt(BaseModel):
    """Says that the ballot counted and nothing of what it said."""

    status: Literal["counted", "already_counted"]
    message: str


class Figure(BaseModel):
    """A number both ways: rounded half up for people, exact for machines."""

    rounded: str
    exact: str


class PointFigure(BaseModel):
    id: str
    name: str
    max: str
    average: Figure


class ItemFigure(BaseModel):
    id: str
    name: str
    max: str
    average: Figure
    points: list[PointFigure]


class GroupFigure(BaseModel):
    key: str
    name: str
    weight: str | None
    ballots: int | None = PydanticField(description="null when below K: small groups are not shown")
    score: Figure | None


class DistributionBin(BaseModel):
    label: str
    low: str
    high: str
    count: int


class FiguresPublic(BaseModel):
    ballots: int
    counted: int
    dropped: int
    flagged: int
    excluded_flagged: int
    status: Literal["ok", "no_ballots", "too_few", "insufficient"]
    message: str | None
    score: Figure | None
    component: Figure | None
    component_weight: str
    total_sum: str
    items: list[ItemFigure]
    groups: list[GroupFigure]
    distribution: list[DistributionBin] = PydanticField(
        default_factory=list, description="how many ballot totals fall in each band (all valid ballots)"
    )


class TallyPublic(BaseModel):
    meeting_id: int
    state: MeetingState
    attendance: int
    tokens_issued: int
    ballots_counted: int
    k: int
    published_at_count: int = PydanticField(
        description="how many ballots the figures were computed from: they move only when a group of at least K"
        " ballots is mixed into the box (at least K always wait for the next group), and at close"
    )
    figures: FiguresPublic | None


class ResultPublic(BaseModel):
    meeting_id: int
    version: int
    digest: str
    digest_format: int = PydanticField(
        description="2: SHA-256 of the ballots, the template, the rules, the earlier versions and the unit"
        " (README, \"The digest\"); 1: of the ballots alone, for results frozen before 2026-12-02"
    )
    versions: list[int] = PydanticField(
        description="every version of this meeting's result; each is readable with ?version="
    )
    closed_at: UtcDateTime
    figures: FiguresPublic

    @classmethod
    def from_row(cls, result: Result, *, versions: list[int]) -> ResultPublic:
        return cls(meeting_id=result.meeting_id, version=result.version, digest=result.digest,
                   digest_format=result.digest_format, versions=versions, closed_at=result.created_at,
                   figures=FiguresPublic.model_validate_json(result.figures))


class TemplateSummary(BaseModel):
    id: str
    version: int
    name: str
    versions: list[int]


class ErrorBody(BaseModel):
    code: str
    detail: str
    problems: list[str] = []
    error_id: str | None = PydanticField(
        default=None, description="on a 500 only: the id of the server's log line, to quote to its administrator"
    )


# ---- results export and webhooks -------------------------------------------------------------


# ---- the versioned records: results, webhooks, overview, audit -------------------------------

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

    @classmethod
    def from_row(cls, endpoint: WebhookEndpoint) -> WebhookPublic:
        return cls.model_validate({"id": endpoint.id, "url": endpoint.url, "events": endpoint.events.split(),
                                   "created_at": endpoint.created_at})


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
