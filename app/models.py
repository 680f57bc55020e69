"""Tables and the JSON shapes of the API.

The eligibility ledger (``ballot_token``) and the ballot box (``ballot``) share no key, and
neither holds a time, an address, a user agent or anything that follows submission order.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field as PydanticField, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import BigInteger, Column, ForeignKeyConstraint, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from app import text
from app.localtime import as_utc

MeetingState = Literal["draft", "open", "closed", "voided"]
Mode = Literal["cards", "screen"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# A time in an API answer: ISO 8601 with the offset ("…Z"), whatever the database gave back.
UtcDateTime = Annotated[dt.datetime, AfterValidator(as_utc)]


# ---- tables ----------------------------------------------------------------------------------


class Category(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    name_en: str = Field(max_length=128)
    position: int


class Unit(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=128)
    category_key: str = Field(foreign_key="category.key", max_length=32, index=True)
    # Since when the service knows the unit: before that, its reviews are known only if recorded.
    created_at: dt.datetime = Field(default_factory=utcnow)


class UnitReviewYear(SQLModel, table=True):
    """A year in which a unit had its on-site review before this service kept its meetings."""

    __tablename__ = "unit_review_year"

    unit_id: int = Field(foreign_key="unit.id", primary_key=True)
    year: int = Field(primary_key=True)


class TemplateVersion(SQLModel, table=True):
    __tablename__ = "template_version"

    template_id: str = Field(primary_key=True, max_length=32)
    version: int = Field(primary_key=True)
    name: str = Field(max_length=100)
    body: str = Field(sa_column=Column(Text, nullable=False))  # the template's JSON
    created_at: dt.datetime = Field(default_factory=utcnow)


class Meeting(SQLModel, table=True):
    __table_args__ = (
        ForeignKeyConstraint(
            ["template_id", "template_version"],
            ["template_version.template_id", "template_version.version"],
            name="fk_meeting_template_version",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    year: int = Field(index=True)
    date: dt.date
    title: str = Field(max_length=200)
    template_id: str = Field(max_length=32)
    template_version: int
    mode: str = Field(max_length=8)
    attendance: int
    groups: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of GroupSpec
    trim: int = 1
    component_weight: str = Field(default="0.4", max_length=16)  # a Decimal, kept exact
    flagged_rule: str = Field(default="count", max_length=8)
    state: str = Field(default="draft", max_length=8)
    created_at: dt.datetime = Field(default_factory=utcnow)


class BallotToken(SQLModel, table=True):
    """The eligibility ledger: who may vote, as keyed hashes. No time, no link to a ballot, and no
    fingerprint of one: a spent code answers "already counted" whatever is sent with it."""

    __tablename__ = "ballot_token"
    __table_args__ = (
        # Counting a meeting's live codes (the tally's "issued") from the index alone, at any size.
        Index("ix_ballot_token_meeting_void", "meeting_id", "void"),
        # Without a rowid, SQLite cannot reveal the order codes were minted in (a card's place on
        # the printed sheet) or claimed in.
        {"sqlite_with_rowid": False},
    )

    hash: str = Field(primary_key=True, max_length=64)  # app.sealing.ServerKeys.code_hash
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    group_key: str | None = Field(default=None, max_length=32)
    used: bool = False
    void: bool = False


class SealedBallot(SQLModel, table=True):
    """A ballot between the spend of its code and its mixing: sealed under its meeting's key
    (app.sealing), all of one size. Its id is random and is not the id it gets in the box."""

    __tablename__ = "sealed_ballot"
    __table_args__ = (Index("ix_sealed_ballot_meeting_id", "meeting_id"), {"sqlite_with_rowid": False})

    id: str = Field(primary_key=True, max_length=32)
    meeting_id: int = Field(foreign_key="meeting.id")
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class MeetingSeal(SQLModel, table=True):
    """The salt of an open meeting's sealing key. Erased at close, which destroys the key."""

    __tablename__ = "meeting_seal"

    meeting_id: int = Field(foreign_key="meeting.id", primary_key=True)
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Turnout(SQLModel, table=True):
    """Codes spent, and how many of their ballots still wait sealed: counts only. Apart from the
    tally, so that a spend rewrites no page that holds figures."""

    meeting_id: int = Field(foreign_key="meeting.id", primary_key=True)
    ballots: int = 0
    sealed: int = 0


class Ballot(SQLModel, table=True):
    """The ballot box. The random id is the only order a listing can have."""

    __table_args__ = (
        Index("ix_ballot_meeting_id", "meeting_id"),
        # Without a rowid, SQLite cannot reveal the insertion order behind the random id.
        {"sqlite_with_rowid": False},
    )

    id: str = Field(primary_key=True, max_length=32)
    meeting_id: int = Field(foreign_key="meeting.id")
    group_key: str | None = Field(default=None, max_length=32)
    answers: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    total: str = Field(max_length=16)  # a Decimal, kept exact
    flagged: bool = False
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Tally(SQLModel, table=True):
    """The ballots mixed into the box so far, and the figures last published: written only when a
    group of at least K is mixed, and at close (turnout is in ``Turnout``)."""

    meeting_id: int = Field(foreign_key="meeting.id", primary_key=True)
    ballot_count: int = 0  # ballots in the box
    published_count: int = 0
    # The figures as FiguresPublic JSON, once the meeting has closed (the recount).
    published: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The running sums of app.tally.MeetingTally as JSON: publishing costs the same at any size.
    state: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # While open: the counts and trimmed sums (app.tally.Snapshot) as they stood at the last step of
    # K, no single ballot among them; the figures are rendered from them when read
    # (store.published_figures), so that storing a ballot never renders figures nobody reads.
    published_sums: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Result(SQLModel, table=True):
    """A closed meeting's frozen figures; closing again after a reopen adds a version."""

    meeting_id: int = Field(foreign_key="meeting.id", primary_key=True)
    version: int = Field(primary_key=True)
    figures: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(max_length=64)
    ballot_count: int
    # The database's clock at the close (store.clock), not the application host's.
    created_at: dt.datetime = Field(default_factory=utcnow)
    # The rater groups' true counts and which were shown apart (app.disclosure.Breakdown as JSON),
    # so that a later version can be held to it. Counts only.
    breakdown: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The order in which results were frozen (store.clock.next_result_number): the export's cursor.
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    # What the result says about the unit, as it stood at close: a unit renamed or moved to another
    # category later does not change a frozen result (its digest covers these too).
    unit_code: str = Field(max_length=32, index=True)
    unit_name: str = Field(max_length=128)
    category: str = Field(max_length=32)
    # The counting rules the result was computed with, K included (app.figures.rules_document), so
    # that verify recomputes it with them whatever the settings say later. None before 2026-12-02.
    rules: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # 2: the digest covers the ballots, the template, the rules, earlier versions and the unit
    # (app.figures.result_digest); 1: the ballots alone (results frozen before 2026-12-02).
    digest_format: int = 1


class AuditEvent(SQLModel, table=True):
    """Organizer actions: who, what, when. Ballots are never audited here."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64)
    meeting_id: int | None = Field(default=None, foreign_key="meeting.id", index=True)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))


class User(SQLModel, table=True):
    """An organizer: the committee's staff (admin), a deputy secretary (secretary) or a reader (viewer)."""

    __tablename__ = "organizer"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=64)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)  # admin | secretary | viewer
    categories: str = Field(default="", max_length=200)  # space-separated category keys
    active: bool = True
    failed_logins: int = 0
    locked_until: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class OrganizerSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; this row, its hash: signing out, a
    password change or the end of the working day deletes the row, and a copied cookie stops working."""

    __tablename__ = "organizer_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="organizer.id", index=True)
    expires_at: dt.datetime


class KnownBrowser(SQLModel, table=True):
    """A browser that has signed in to an account with its password (a random token in a cookie
    sent only to /login, kept here as a hash). Wrong passwords from elsewhere lock an account for
    unknown browsers only; this browser can still sign in, and its correct password lifts the lock."""

    __tablename__ = "known_browser"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="organizer.id", primary_key=True, index=True)
    failed_logins: int = 0
    created_at: dt.datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    key_hash: str = Field(max_length=64, unique=True)
    scopes: str = Field(default="admin", max_length=100)  # space-separated
    created_at: dt.datetime = Field(default_factory=utcnow)
    last_used_on: dt.date | None = None  # a day, not a time: enough to spot a dead key
    revoked: bool = False


# ---- API shapes ------------------------------------------------------------------------------


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
    flagged_rule: Literal["count", "exclude"] = "count"

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
    flagged_rule: str
    state: MeetingState


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
    digest_format: int = Field(
        description="2: SHA-256 of the ballots, the template, the rules, the earlier versions and the unit"
        " (README, \"The digest\"); 1: of the ballots alone, for results frozen before 2026-12-02"
    )
    versions: list[int] = Field(description="every version of this meeting's result; each is readable with ?version=")
    closed_at: UtcDateTime
    figures: FiguresPublic


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


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of result events, registered by an administrator."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    # Kept as given, because every delivery is signed with it; never shown again, erased on delete.
    secret: str = Field(max_length=200)
    events: str = Field(max_length=200)  # space-separated
    active: bool = True
    created_at: dt.datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """The outbox: one event for one endpoint, written in the transaction that caused it."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)

    id: str = Field(primary_key=True, max_length=36)  # the delivery id receivers deduplicate by
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", index=True)
    event: str = Field(max_length=32)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    result_version: int
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the signed body, frozen at enqueue
    status: str = Field(default="pending", max_length=16)  # pending, delivered, failed, cancelled
    attempts: int = 0
    # While a worker holds a delivery this is the end of its lease: a crashed worker's claim expires.
    next_attempt_at: dt.datetime = Field(default_factory=utcnow)
    created_at: dt.datetime = Field(default_factory=utcnow)
    # Retries go on until webhook_retry_hours after this: the enqueue, or the last "send again".
    retry_from: dt.datetime = Field(default_factory=utcnow)
    delivered_at: dt.datetime | None = None
    last_status_code: int | None = None


class WebhookAttempt(SQLModel, table=True):
    """The delivery log: when, what status came back, or which kind of error. Never a body."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(foreign_key="webhook_delivery.id", index=True, max_length=36)
    number: int
    at: dt.datetime = Field(default_factory=utcnow)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=200)
    duration_ms: int = 0
