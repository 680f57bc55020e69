"""JSON twins of the console's administration pages: accounts, API keys, audit log, voiding codes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app import store
from app.auth import UserRole
from app.routes.access import Admin, Staff, managed_meeting
from app.routes.deps import SessionDep
from app.schemas import ApiModel, ErrorBody, UtcDateTime
from app.tables import ApiKey, User

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (401, 403, 404, 409, 422)}
router = APIRouter(prefix="/api/v1", responses=ERRORS)


class AccountCreate(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
    role: str
    categories: list[str] = Field(default_factory=list)


class AccountUpdate(ApiModel):
    role: str
    categories: list[str] = Field(default_factory=list)
    active: bool = True


class AccountPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: UserRole
    categories: list[str]
    active: bool

    @classmethod
    def from_row(cls, user: User) -> AccountPublic:
        return cls.model_validate({"id": user.id, "username": user.username, "display_name": user.display_name,
                                   "role": user.role, "categories": user.categories.split(), "active": user.active})


class ApiKeyCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: str = Field(default="export", examples=["export"])


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    scopes: str
    created_at: UtcDateTime
    last_used_on: dt.date | None
    revoked: bool

    @classmethod
    def from_row(cls, key: ApiKey) -> ApiKeyPublic:
        return cls.model_validate({"id": key.id, "name": key.name, "scopes": key.scopes, "created_at": key.created_at,
                                   "last_used_on": key.last_used_on, "revoked": key.revoked})


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="shown in this answer only; the service keeps its hash")


class AuditEventPublic(BaseModel):
    id: int
    at: UtcDateTime
    actor: str
    action: str
    meeting_id: int | None
    detail: dict[str, Any]


class VoidBody(ApiModel):
    group: str | None = None


class VoidReport(BaseModel):
    voided: int


@router.get("/accounts", tags=["administration"])
def list_accounts(session: SessionDep, _: Admin) -> list[AccountPublic]:
    return [AccountPublic.from_row(user) for user in store.list_users(session=session)]


@router.post("/accounts", status_code=201, tags=["administration"])
def create_account(body: AccountCreate, session: SessionDep, principal: Admin) -> AccountPublic:
    user = store.create_user(session=session, actor=principal.name, username=body.username,
                             display_name=body.display_name, password=body.password, role=body.role,
                             categories=body.categories)
    return AccountPublic.from_row(user)


@router.patch("/accounts/{user_id}", tags=["administration"])
def update_account(user_id: int, body: AccountUpdate, session: SessionDep, principal: Admin) -> AccountPublic:
    user = store.update_user(session=session, actor=principal.name, user_id=user_id, role=body.role,
                             categories=body.categories, active=body.active)
    return AccountPublic.from_row(user)


@router.get("/api-keys", tags=["administration"])
def list_api_keys(session: SessionDep, _: Admin) -> list[ApiKeyPublic]:
    return [ApiKeyPublic.from_row(key) for key in store.list_api_keys(session=session)]


@router.post("/api-keys", status_code=201, tags=["administration"])
def create_api_key(body: ApiKeyCreate, session: SessionDep, principal: Admin) -> ApiKeyCreated:
    key = store.create_api_key(session=session, name=body.name, scopes=body.scopes, actor=principal.name)
    row = store.list_api_keys(session=session)[-1]
    return ApiKeyCreated(key=key, **ApiKeyPublic.from_row(row).model_dump())


@router.post("/api-keys/{key_id}/revoke", tags=["administration"])
def revoke_api_key(key_id: int, session: SessionDep, principal: Admin) -> ApiKeyPublic:
    return ApiKeyPublic.from_row(store.revoke_api_key(session=session, actor=principal.name, key_id=key_id))


@router.get("/audit", tags=["administration"])
def audit_log(
    session: SessionDep, _: Admin, meeting_id: int | None = None, actor: str | None = None
) -> list[AuditEventPublic]:
    """Organizer actions, newest first: who did what and when. Ballots never appear here."""
    return [
        AuditEventPublic(id=e.id or 0, at=e.at, actor=e.actor, action=e.action, meeting_id=e.meeting_id,
                         detail=json.loads(e.detail))
        for e in store.list_audit(session=session, meeting_id=meeting_id, actor=actor)
    ]


@router.post("/meetings/{meeting_id}/tokens/void", tags=["meetings"])
def void_tokens(meeting_id: int, body: VoidBody, session: SessionDep, principal: Staff) -> VoidReport:
    """Void every unspent code of the meeting (or of one group), e.g. after a card sheet was lost."""
    managed_meeting(session, principal, meeting_id)
    count = store.void_unused_tokens(session=session, actor=principal.name, meeting_id=meeting_id, group=body.group)
    return VoidReport(voided=count)
