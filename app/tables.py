"""The tables: what the database holds, one SQLModel class a table.

The eligibility ledger (``ballot_token``) and the ballot box (``ballot``) share no key, and
neither holds a time, an address, a user agent or anything that follows submission order.
The JSON shapes of the API are in app.schemas; a shape that reads a row says so with ``from_row``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy import BigInteger, Column, ForeignKeyConstraint, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

MeetingState = Literal["draft", "open", "closed", "voided"]
Mode = Literal["cards", "screen"]
FlaggedRule = Literal["count", "exclude"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
