"""What the organizer's pages share: rendering with the signed-in organizer, flashes, forms.

The console is for the committee's staff on a laptop, in Simplified Chinese. Every page is a plain
server-rendered form page; every number on it comes from the same store function as its JSON twin.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlmodel import Session

from app import store
from app.auth import ROLE_NAMES, Principal
from app.errors import DomainError
from app.labels import actor_label, detail_text
from app.localtime import local_date, local_text, zone_label
from app.messages import TERMS
from app.routes.access import SESSION_TOKEN, csrf_token
from app.routes.pages import asset_url
from app.tables import AuditEvent

TEMPLATE_DIR = Path(__file__).resolve().parent.parent.parent / "templates"
templates = Jinja2Templates(directory=TEMPLATE_DIR)


def _zone(context: Context) -> Any:
    return context["request"].app.state.settings.zone


@pass_context
def _local(context: Context, value: dt.datetime | None, seconds: bool = False) -> str:
    """A stored UTC time as the organizer reads it: in the service's zone (settings.timezone)."""
    return "" if value is None else local_text(value, _zone(context), seconds=seconds)


@pass_context
def _local_date(context: Context, value: dt.datetime | None) -> str:
    return "" if value is None else local_date(value, _zone(context))


@pass_context
def _zone_name(context: Context) -> str:
    return zone_label(_zone(context))


templates.env.filters["local"] = _local
templates.env.filters["local_date"] = _local_date
templates.env.globals["zone_name"] = _zone_name
templates.env.globals["asset"] = asset_url

STATE_NAMES = {state: zh for state, (zh, _) in TERMS["state"].items()}
MODE_NAMES = {"cards": "测评卡（每人一张二维码）", "screen": "大屏二维码（现场扫码领取）"}
ACTION_NAMES = {
    "unit.create": "添加单位", "unit.update": "修改单位", "unit.import": "导入单位",
    "template.create": "保存测评票模板", "meeting.create": "创建评议会", "meeting.open": "开启评议会",
    "meeting.close": "结束评议会", "meeting.reopen": "重新开启评议会", "tokens.mint": "发放测评码",
    "meeting.void": "作废评议会", "meeting.delete": "删除评议会",
    "tokens.void": "作废测评码", "api_key.create": "创建 API 密钥", "api_key.revoke": "吊销 API 密钥",
    "account.create": "创建账号", "account.update": "修改账号", "account.sign_in": "登录",
    "account.sign_in_failed": "登录失败", "account.password": "修改密码",
    "meeting.audit_export": "导出原始测评票", "webhook.create": "登记回调地址", "webhook.delete": "删除回调地址",
    "webhook.resend": "重新投递回调",
}
# Console pages may be cached by nobody: they show who may vote and, after close, results. They
# load everything from this server and run no inline script (static/console.js does the little
# there is), so that text someone managed to put in a page (a unit's name, a comment) stays text.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
}

NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/meetings", "评议会", ("admin", "secretary", "viewer")),
    ("/units", "单位", ("admin", "secretary", "viewer")),
    ("/results", "结果", ("admin", "secretary", "viewer")),
    ("/overview", "年度总览", ("admin", "secretary", "viewer")),
    ("/ballot-templates", "测评票模板", ("admin", "secretary", "viewer")),
    ("/accounts", "账号", ("admin",)),
    ("/api-keys", "API 密钥", ("admin",)),
    ("/audit", "操作日志", ("admin",)),
)


@dataclass(frozen=True)
class AuditRow:
    """An audit event as the console shows it: who by name, the details in words."""

    at: dt.datetime
    actor: str
    action: str
    meeting_id: int | None
    detail: str


def audit_rows(
    session: Session, events: Sequence[AuditEvent], groups: Mapping[str, str] | None = None
) -> list[AuditRow]:
    """``groups``: rater-group keys to names, beyond the default groups (a meeting's own)."""
    people = {user.username: user.display_name for user in store.list_users(session=session)}
    names = {**dict(store.DEFAULT_GROUPS), **{c.key: c.name for c in store.categories(session=session)},
             **(groups or {})}
    return [
        AuditRow(at=event.at, actor=actor_label(event.actor, people),
                 action=ACTION_NAMES.get(event.action, event.action), meeting_id=event.meeting_id,
                 detail=detail_text(json.loads(event.detail), names))
        for event in events
    ]


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def render(
    request: Request, name: str, principal: Principal | None, status: int = 200, **context: Any
) -> HTMLResponse:
    flashes = request.session.pop("flash", []) if "session" in request.scope else []
    return templates.TemplateResponse(
        request,
        name,
        {
            "principal": principal,
            "role_names": ROLE_NAMES,
            "state_names": STATE_NAMES,
            "mode_names": MODE_NAMES,
            "action_names": ACTION_NAMES,
            "nav": [(href, label) for href, label, roles in NAV if principal and principal.role in roles],
            # Phone paths carry no session (see middleware.SessionsExceptPhones): no form of theirs needs one.
            "csrf": csrf_token(request) if "session" in request.scope else "",
            "flashes": flashes,
            "errors": context.pop("errors", {}),
            "form": context.pop("form", {}),
            **context,
        },
        status_code=status,
        headers=HEADERS,
    )


def redirect(url: str) -> RedirectResponse:
    # 303: the browser follows a form post with a GET, so a reload does not post again.
    return RedirectResponse(url, status_code=303)


def message_page(
    request: Request, error: DomainError, principal: Principal | None = None, *, error_id: str | None = None
) -> HTMLResponse:
    """A plain page for an error on a console page: what went wrong and a way back."""
    back = request.headers.get("referer") or "/meetings"
    titles = {401: "需要登录", 403: "无权访问", 404: "找不到", 409: "当前无法操作", 413: "内容过大",
              500: "服务器出错", 503: "服务暂时不可用"}
    return render(
        request, "organizer/message.html", principal, status=error.status,
        title=titles.get(error.status, "输入有误"), message=error.message("zh"), back=back, error_id=error_id,
    )


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/login?next={quote(target)}")


def field_errors(error: DomainError, field: str) -> dict[str, str]:
    """An error to show next to one field of a form."""
    problems = error.problems or [error.problem]
    return {field: "；".join(problem.message("zh") for problem in problems)}


def signed_in(request: Request, token: str) -> None:
    """The browser now holds the new session's token (store.start_session), and a new CSRF token."""
    request.session.clear()
    request.session[SESSION_TOKEN] = token
    csrf_token(request)
