"""Who may do what, and organizer passwords. Pure: no web or database imports.

Roles (issue #4): ``admin`` does everything, including accounts and API keys; ``secretary`` (a deputy
secretary) runs the meetings of the units in the categories assigned to them; ``viewer`` reads the results
of assigned categories. An API key acts as ``admin``, or as ``export`` when it may only read results.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.messages import Problem

Role = Literal["admin", "secretary", "viewer", "export"]
UserRole = Literal["admin", "secretary", "viewer"]  # a person's; "export" is an API key's
USER_ROLES: tuple[UserRole, ...] = ("admin", "secretary", "viewer")
ROLE_NAMES = {"admin": "管理员", "secretary": "分管副书记", "viewer": "只读", "export": "结果导出"}

# After this many wrong passwords in a row from browsers the account does not know, such browsers
# wait LOCKOUT before the next try: enough for typos, far too slow for guessing. A browser that
# has signed in to the account before is not held up by strangers' failures (store.sign_in), and
# forgets its standing after this many wrong passwords of its own.
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
# A signed-in organizer stays signed in for a working day, not longer (the cookie and the server).
SESSION_LIFETIME = dt.timedelta(hours=8)

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """The organizer or API key behind a request."""

    name: str  # as the audit log shows it: "user:wang" or "api:main-system"
    role: Role
    categories: frozenset[str] | None = None  # None: every category
    user_id: int | None = None
    display_name: str = ""  # the person's name as the console shows it; empty for an API key

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name.partition(":")[2]

    def sees(self, category: str) -> bool:
        if self.role in ("admin", "export"):
            return True
        return self.categories is not None and category in self.categories

    def manages(self, category: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "secretary" and self.categories is not None and category in self.categories

    def visible(self, categories: Iterable[str]) -> list[str]:
        return [category for category in categories if self.sees(category)]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, username: str) -> Problem | None:
    """Why a new password is refused; None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return Problem("password_too_short", {"min": MIN_PASSWORD_LENGTH})
    if username and username.lower() in password.lower():
        return Problem("password_has_username")
    return None


def is_locked(locked_until: dt.datetime | None, now: dt.datetime) -> bool:
    return locked_until is not None and now < locked_until


def lock_end(locked_until: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """When a lock ends, seen from ``now``; None when there is none. Never more than LOCKOUT away:
    a clock put back would otherwise stretch a lockout by as much as it went back."""
    if locked_until is None or now >= locked_until:
        return None
    return min(locked_until, now + LOCKOUT)


def after_failure(failed_logins: int, now: dt.datetime) -> tuple[int, dt.datetime | None]:
    """The new failure count and lock time after one more wrong password."""
    failed = failed_logins + 1
    return failed, (now + LOCKOUT if failed >= MAX_FAILED_LOGINS else None)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def new_token() -> str:
    """A session's or a browser's token: 256 random bits, kept by the server only as token_hash."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # 256 random bits: a plain SHA-256 cannot be reversed by guessing, and needs no key.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and secrets.compare_digest(str(expected), str(given))
