"""What every server-rendered page shares: the Jinja2 environment, the language, the headers.

Phone pages carry a ballot code in their URL, so each answer tells the browser and any proxy
not to keep it (no-store), not to pass it on to another page (no-referrer), and to load
nothing from anywhere but this service (the CSP).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from decimal import Decimal
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.types import Scope

from app import i18n
from app.settings import Settings
from app.tokens import ALPHABET

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

# The screen link: the meeting id, then an HMAC of it cut to about the strength of a ballot
# code. Unguessable without the secret, and short enough to type from the projector.
SCREEN_MAC_LENGTH = 10


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["asset"] = asset_url
    env.filters["plain"] = plain
    return env


@cache
def inline_asset(name: str) -> tuple[str, str]:
    """A static file's text for a <style> element, and the CSP source that admits exactly it."""
    body = (STATIC_DIR / name).read_text("utf-8")
    digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
    return body, f"'sha256-{digest}'"


@cache
def _asset_version(name: str) -> str:
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]


def asset_url(name: str) -> str:
    """A static file's URL, versioned by its content so that phones may cache it for good."""
    return f"/static/{name}?v={_asset_version(name)}"


# A versioned asset never changes under its URL: browsers and proxies may keep it for a year
# without asking again. Anything else must be checked (ETag) before it is used.
CACHED_FOR_GOOD = "public, max-age=31536000, immutable"


class VersionedStaticFiles(StaticFiles):
    """Static files whose ``?v=`` names their current content are cached for good; others revalidate."""

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [""])[0]
        name = Path(full_path).resolve().relative_to(STATIC_DIR.resolve()).as_posix()
        current = given and given == _asset_version(name)
        response.headers["Cache-Control"] = CACHED_FOR_GOOD if current else "no-cache"
        return response


def plain(value: Decimal | int | str) -> str:
    """A number as people write it: 4.80 -> '4.8', 6 -> '6'."""
    number = Decimal(value).normalize()
    return format(number, "f")


class Page:
    """The language of one request and the links that keep it."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.explicit = i18n.from_query(request.query_params.get("lang"))
        self.lang: i18n.Lang = self.explicit or i18n.from_accept_language(request.headers.get("accept-language"))
        self.t = i18n.translator(self.lang)

    def url(self, path: str, **params: str) -> str:
        """A link that keeps a language the rater chose; the browser's own preference needs no help."""
        query = {**({"lang": self.explicit} if self.explicit else {}), **params}
        return f"{path}?{urlencode(query)}" if query else path

    def switch_url(self) -> str:
        other = "en" if self.lang == "zh" else "zh"
        return f"{self.request.url.path}?{urlencode({'lang': other})}"

    def render(self, name: str, status: int = 200, *, headers: dict[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        html = environment().get_template(name).render(
            t=self.t, lang=self.lang, page=self, switch_url=self.switch_url(), **context
        )
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})

    def message(self, title: str, body: str, status: int, *, link: tuple[str, str] | None = None,
                counted_code: str = "", **params: Any) -> HTMLResponse:
        """A plain page: what happened and what to do, in words from the catalogue."""
        return self.render("message.html", status, title=self.t(title, **params), body=self.t(body, **params),
                           link=link, counted_code=counted_code)


PageDep = Annotated[Page, Depends(Page)]


# ---- the screen link --------------------------------------------------------------------------


def screen_key(secret: str, meeting_id: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"screen:{meeting_id}".encode(), "sha256").digest()
    number = int.from_bytes(mac, "big")
    letters = []
    for _ in range(SCREEN_MAC_LENGTH):
        number, index = divmod(number, len(ALPHABET))
        letters.append(ALPHABET[index])
    return f"{meeting_id}-{''.join(letters).lower()}"


def meeting_of_screen_key(secret: str, key: str) -> int | None:
    """The meeting a screen link names, or None when the link was not made with our secret."""
    meeting, _, _ = key.partition("-")
    if not meeting.isdigit() or len(meeting) > 12:
        return None
    expected = screen_key(secret, int(meeting))
    given = key.strip().lower().encode("utf-8")
    return int(meeting) if hmac.compare_digest(expected.encode("ascii"), given) else None


def screen_path(settings: Settings, meeting_id: int) -> str:
    """The projector page of a screen meeting, as the console links to it."""
    return f"/s/{screen_key(settings.secret(), meeting_id)}/screen"


def screen_urls(settings: Settings, meeting_id: int) -> tuple[str, str]:
    """The link phones open (the QR's content) and the projector page that shows it."""
    base = settings.base_url.rstrip("/")
    key = screen_key(settings.secret(), meeting_id)
    return f"{base}/s/{key}", f"{base}/s/{key}/screen"
