"""Reference data (categories, the default template) and the audit log every organizer action writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.scoring import canonical_json
from app.tables import AuditEvent, Category, TemplateVersion, Unit
from app.templates import default_template

CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("party_gov", "党政机关", "Party and government organs"),
    ("central", "中直单位", "Central units in the province"),
    ("mass_org", "群团组织", "Mass organizations"),
    ("enterprise", "企事业单位", "Enterprises and institutions"),
)
DEFAULT_GROUPS: tuple[tuple[str, str], ...] = (
    ("leaders", "党组（党委）班子成员"),
    ("committee", "机关党委委员"),
    ("secretaries", "基层党组织书记"),
    ("representatives", "党员群众代表"),
)
MAX_MINT = 1000
API_KEY_PREFIX = "ob_"
API_SCOPES = ("admin", "export")


def seed_reference(*, session: Session) -> None:
    """The four categories and the default template, when missing. Safe to run at every start."""
    for position, (key, name, name_en) in enumerate(CATEGORIES):
        if session.get(Category, key) is None:
            session.add(Category(key=key, name=name, name_en=name_en, position=position))
    template = default_template()
    if session.get(TemplateVersion, (template.id, template.version)) is None:
        session.add(
            TemplateVersion(
                template_id=template.id,
                version=template.version,
                name=template.name,
                body=template.to_json(),
            )
        )
    session.commit()


def is_empty(*, session: Session) -> bool:
    return int(session.execute(select(func.count()).select_from(Unit)).scalar_one()) == 0


def audit(
    *,
    session: Session,
    actor: str,
    action: str,
    meeting_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            meeting_id=meeting_id,
            detail=canonical_json(detail or {}),
        )
    )


AUDIT_PAGE = 200


def list_audit(
    *, session: Session, meeting_id: int | None = None, actor: str | None = None, limit: int = AUDIT_PAGE
) -> list[AuditEvent]:
    """Newest first."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if meeting_id is not None:
        query = query.where(col(AuditEvent.meeting_id) == meeting_id)
    if actor:
        query = query.where(col(AuditEvent.actor) == actor)
    return list(session.scalars(query))


def audit_actors(*, session: Session) -> list[str]:
    return list(session.scalars(select(col(AuditEvent.actor)).distinct().order_by(col(AuditEvent.actor))))
