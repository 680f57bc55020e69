"""The middlewares of our own, outermost first as create_app adds them: refusing a control
character in the address, gzip except for the submit, sessions except on phone paths (with a
signer that survives a clock put back), and the bound on request bodies."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import itsdangerous
from fastapi import Request
from itsdangerous.exc import SignatureExpired
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import text
from app.errors import Problem
from app.routes.deps import error_response


class BodyLimit:
    """Refuse a request body over the limit, declared or streamed, before any handler reads it; and
    one that trickles in slower than ``seconds`` (a slow-loris client holds a connection, not the app)."""

    def __init__(
        self, app: ASGIApp, limit: int, overrides: dict[str, int] | None = None, seconds: float = 15.0
    ) -> None:
        self.app = app
        self.default = limit
        self.overrides = overrides or {}
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, Problem("request_too_large", {"limit": limit}), 413)
            return
        seen = 0
        complete = False
        refusal: tuple[Problem, int] | None = None
        deadline = asyncio.get_running_loop().time() + self.seconds

        async def limited() -> Message:
            nonlocal seen, complete, refusal
            if complete:  # after the body, receive() waits for a disconnect: no deadline there
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                refusal = (Problem("request_too_slow", {"seconds": int(self.seconds)}), 408)
                raise _Refused from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    refusal = (Problem("request_too_large", {"limit": limit}), 413)
                    raise _Refused
            return message

        async def guarded(message: Message) -> None:
            # The framework turns a failed body read into its own 400; the refusal below replaces it.
            if refusal is None:
                await send(message)

        with suppress(_Refused):
            await self.app(scope, limited, guarded)
        if refusal is not None:
            await self._refuse(scope, receive, send, *refusal)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: Problem, status: int) -> None:
        response = error_response(Request(scope, receive), problem, status)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _Refused(Exception):
    pass


class RefuseControlInAddress:
    """422 for a control character in the path or the query string (app.text), before any route:
    a NUL handed on to PostgreSQL in a lookup fails the whole query (a 500 once)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and text.address_has_control(scope["path"], scope.get("query_string", b"")):
            response = error_response(Request(scope, receive), Problem("request_control"), 422)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# Phone paths never carry an organizer's session: the hot path skips the cookie's signature
# check, and nothing on a rater's side can be tied to a signed-in browser.
PHONE_PREFIXES = ("/api/v1/ballots", "/b/", "/c", "/s/", "/thanks", "/static/", "/healthz", "/readyz")


# Below this a response is sent as it is: gzip's header and checksum would outweigh the saving.
COMPRESS_MIN_BYTES = 500
# zlib level 6: within a few per cent of level 9 on our pages, at about a third of the CPU.
COMPRESS_LEVEL = 6
# The submit path answers in ~150 bytes and is the one path 200 phones take at once: not compressed.
UNCOMPRESSED_PATHS = frozenset({"/api/v1/ballots"})


class CompressExceptSubmits:
    """gzip for pages, stylesheets, scripts and API reads (a phone on a weak signal waits for every
    byte), but not for the ballot submit, whose answer is small and whose time is the service's."""

    def __init__(self, app: ASGIApp) -> None:
        self.plain = app
        self.compressed = GZipMiddleware(app, minimum_size=COMPRESS_MIN_BYTES, compresslevel=COMPRESS_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCOMPRESSED_PATHS:
            await self.compressed(scope, receive, send)
        else:
            await self.plain(scope, receive, send)


class SessionsExceptPhones:
    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.plain = app
        self.with_sessions = SessionMiddleware(app, **options)
        self.with_sessions.signer = ClockTolerantSigner(str(options["secret_key"]), tolerance=options["max_age"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PHONE_PREFIXES):
            await self.plain(scope, receive, send)
        else:
            await self.with_sessions(scope, receive, send)


class ClockTolerantSigner(itsdangerous.TimestampSigner):
    """The session cookie's signer, for a clock that can be put back.

    itsdangerous refuses a signature made "in the future": when the host's clock is put back (an NTP
    step, a wrong manual setting), every organizer would be signed out at once. Such a signature is
    accepted here if it is no further ahead than ``tolerance``; the age limit still holds, counted on
    the clock as it now runs. Only a holder of the secret can make a signature of any time.
    """

    def __init__(self, secret_key: str, *, tolerance: int) -> None:
        super().__init__(secret_key)
        self.tolerance = tolerance

    def unsign(
        self, signed_value: str | bytes, max_age: int | None = None, return_timestamp: bool = False
    ) -> Any:
        value, signed_at = super().unsign(signed_value, return_timestamp=True)
        age = self.get_timestamp() - int(signed_at.timestamp())
        if (max_age is not None and age > max_age) or age < -self.tolerance:
            raise SignatureExpired(f"signature age {age} s", payload=value, date_signed=signed_at)
        return (value, signed_at) if return_timestamp else value
