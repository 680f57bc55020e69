"""Ballot template versions: stored once, never changed, parsed once per process."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Connection, func, select
from sqlmodel import Session, col

from app.errors import Conflict, NotFound
from app.store.base import audit
from app.tables import TemplateVersion
from app.templates import BallotTemplate, parse_template


@lru_cache(maxsize=256)
def template_from_body(body: str) -> BallotTemplate:
    """A stored version's JSON, parsed. Versions never change once written, so it is kept for the process."""
    return parse_template(body)


def get_template(*, session: Session | Connection, template_id: str, version: int | None = None) -> BallotTemplate:
    query = select(col(TemplateVersion.body)).where(col(TemplateVersion.template_id) == template_id)
    if version is None:
        query = query.order_by(col(TemplateVersion.version).desc())
    else:
        query = query.where(col(TemplateVersion.version) == version)
    body = session.execute(query.limit(1)).scalar()
    if body is None:
        if version is None:
            raise NotFound("template_not_found", id=template_id)
        raise NotFound("template_version_not_found", id=template_id, version=version)
    return template_from_body(body)


def list_templates(*, session: Session) -> list[tuple[str, list[int], str]]:
    rows = session.execute(
        select(col(TemplateVersion.template_id), col(TemplateVersion.version), col(TemplateVersion.name)).order_by(
            col(TemplateVersion.template_id), col(TemplateVersion.version)
        )
    ).all()
    found: dict[str, tuple[list[int], str]] = {}
    for template_id, version, name in rows:
        versions, _ = found.get(template_id, ([], name))
        found[template_id] = ([*versions, version], name)
    return [(tid, versions, name) for tid, (versions, name) in found.items()]


def save_template(*, session: Session, actor: str, template: BallotTemplate) -> BallotTemplate:
    """Store a template as its next version; the version in the body must be that next one or absent."""
    latest = session.execute(
        select(func.max(TemplateVersion.version)).where(col(TemplateVersion.template_id) == template.id)
    ).scalar()
    next_version = (latest or 0) + 1
    if latest is not None and template.version not in (1, next_version):
        raise Conflict("template_version_taken", id=template.id, version=template.version, next=next_version)
    if latest is None and template.version != 1:
        next_version = template.version
    template = template.model_copy(update={"version": next_version})
    session.add(
        TemplateVersion(template_id=template.id, version=template.version, name=template.name, body=template.to_json())
    )
    audit(
        session=session, actor=actor, action="template.create", detail={"id": template.id, "version": template.version}
    )
    session.commit()
    return template
