"""API keys and organizer accounts: hashes only, sign-in with lockout."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlmodel import Session, col

from app import auth, text
from app.errors import Conflict, Invalid, NotFound, Unauthorized, invalid_with
from app.store.base import API_KEY_PREFIX, API_SCOPES, audit
from app.store.clock import database_now
from app.store.units import _category_keys
from app.tables import ApiKey, KnownBrowser, OrganizerSession, User


def _key_hash(key: str) -> str:
    # The key is 256 random bits, so a plain SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(*, session: Session, name: str, scopes: str = "admin", actor: str = "system:cli") -> str:
    name, scopes = name.strip(), " ".join(scopes.split())
    if not name:
        raise Invalid("unit_field", field="api_key_name")
    text.check(name, "api_key_name")
    if not scopes or any(scope not in API_SCOPES for scope in scopes.split()):
        raise Invalid("api_key_scope", scopes=scopes)
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=_key_hash(key), scopes=scopes))
    audit(session=session, actor=actor, action="api_key.create", detail={"name": name, "scopes": scopes})
    session.commit()
    return key


def authenticate_api_key(*, session: Session, key: str) -> ApiKey | None:
    row = session.scalars(select(ApiKey).where(col(ApiKey.key_hash) == _key_hash(key))).first()
    if row is None or row.revoked:
        return None
    return row


def touch_api_key(*, session: Session, key_id: int) -> None:
    """Note the day a key was used (a day, not a time: enough to spot a key nobody uses)."""
    session.execute(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_on=dt.date.today()))
    session.commit()


def count_api_keys(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(ApiKey)).scalar_one())


def list_api_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(col(ApiKey.id))))


def revoke_api_key(*, session: Session, actor: str, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("not_found")
    key.revoked = True
    session.add(key)
    audit(session=session, actor=actor, action="api_key.revoke", detail={"name": key.name})
    session.commit()
    return key


# ---- organizer accounts -----------------------------------------------------------------------


def _check_account(session: Session, role: str, categories: Sequence[str]) -> str:
    if role not in auth.USER_ROLES:
        raise Invalid("account_role", role=role)
    known = set(_category_keys(session))
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise Invalid("unit_unknown_category", category=",".join(unknown), allowed="/".join(sorted(known)))
    return " ".join(sorted(set(categories)))


def create_user(
    *,
    session: Session,
    actor: str,
    username: str,
    display_name: str,
    password: str,
    role: str,
    categories: Sequence[str] = (),
) -> User:
    username = username.strip()
    if not username or not display_name.strip():
        raise Invalid("unit_field", field="username" if not username else "display_name")
    text.check(username, "username")
    text.check(display_name, "display_name")
    problem = auth.password_problem(password, username)
    if problem:
        raise invalid_with([problem])
    cats = _check_account(session, role, categories)
    if session.scalars(select(User).where(col(User.username) == username)).first() is not None:
        raise Conflict("account_taken", username=username)
    user = User(
        username=username,
        display_name=display_name.strip(),
        password_hash=auth.hash_password(password),
        role=role,
        categories=cats,
    )
    session.add(user)
    audit(session=session, actor=actor, action="account.create", detail={"username": username, "role": role})
    session.commit()
    return user


def update_user(
    *, session: Session, actor: str, user_id: int, role: str, categories: Sequence[str], active: bool
) -> User:
    user = get_user(session=session, user_id=user_id)
    user.categories = _check_account(session, role, categories)
    user.role = role
    user.active = active
    # An administrator saving the account lifts a lock that strangers' guesses put on it.
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    audit(
        session=session,
        actor=actor,
        action="account.update",
        detail={"username": user.username, "role": role, "categories": user.categories, "active": active},
    )
    session.commit()
    return user


def get_user(*, session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("not_found")
    return user


def find_active_user(*, session: Session, user_id: int) -> User | None:
    user = session.get(User, user_id)
    return user if user is not None and user.active else None


def list_users(*, session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(col(User.username))))


def count_users(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(User)).scalar_one())


def sign_in(*, session: Session, username: str, password: str, browser: str, now: dt.datetime | None = None) -> User:
    """The user, or Unauthorized("sign_in_failed") — the same words for every failure.

    ``browser`` is the token of the browser's own cookie (app.routes.console_auth). Wrong passwords
    from browsers the account does not know lock it for such browsers for a while; a browser that
    has signed in to the account before is never held up by them, and its correct password lifts
    the lock. So an outsider's five guesses cannot keep a deputy secretary out on meeting morning.
    The lock is timed on the database's clock, which every worker shares; a lock whose end lies
    further ahead than its length (the clock went back) is shortened to its length from now.
    """
    now = now or database_now(session)
    # A control character is no one's name; PostgreSQL would refuse even to look a NUL up.
    user = None if text.has_control(username) else session.scalars(
        select(User).where(col(User.username) == username.strip())
    ).first()
    if user is None or not user.active:
        auth.verify_password(_DUMMY_HASH, password)  # same work either way: no user enumeration by timing
        raise _sign_in_failed()
    known = session.get(KnownBrowser, (auth.token_hash(browser), user.id))
    locked_until = _aware(user.locked_until)
    lock_end = auth.lock_end(locked_until, now)
    if lock_end is not None and lock_end != locked_until:
        user.locked_until = lock_end
        session.add(user)
        session.commit()
    if known is None and lock_end is not None:
        auth.verify_password(_DUMMY_HASH, password)
        raise _sign_in_failed()
    if not auth.verify_password(user.password_hash, password):
        if known is None:
            user.failed_logins, user.locked_until = auth.after_failure(user.failed_logins, now)
            session.add(user)
        elif known.failed_logins + 1 >= auth.MAX_FAILED_LOGINS:
            session.delete(known)  # guessing from here: this browser is a stranger again
        else:
            known.failed_logins += 1
            session.add(known)
        audit(session=session, actor=f"user:{user.username}", action="account.sign_in_failed")
        session.commit()
        raise _sign_in_failed()
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    if known is None:
        session.add(KnownBrowser(token_hash=auth.token_hash(browser), user_id=user.id, created_at=now))  # type: ignore[arg-type]
    else:
        known.failed_logins = 0
        session.add(known)
    audit(session=session, actor=f"user:{user.username}", action="account.sign_in")
    session.commit()
    return user


def _sign_in_failed() -> Unauthorized:
    return Unauthorized(
        "sign_in_failed", attempts=auth.MAX_FAILED_LOGINS, minutes=int(auth.LOCKOUT.total_seconds() // 60)
    )


def is_known_browser(*, session: Session, username: str, browser: str) -> bool:
    user = session.scalars(select(User).where(col(User.username) == username)).first()
    return user is not None and session.get(KnownBrowser, (auth.token_hash(browser), user.id)) is not None


def start_session(*, session: Session, user_id: int, now: dt.datetime | None = None) -> str:
    """A new session for a signed-in user; answers the token for the cookie (kept here as a hash)."""
    now = now or database_now(session)
    token = auth.new_token()
    session.execute(delete(OrganizerSession).where(col(OrganizerSession.expires_at) < now))
    session.add(OrganizerSession(token_hash=auth.token_hash(token), user_id=user_id,
                                 expires_at=now + auth.SESSION_LIFETIME))
    session.commit()
    return token


def session_user(*, session: Session, token: str, now: dt.datetime | None = None) -> User | None:
    """The active user of a live session; None once it has ended, expired or its user is disabled."""
    row = session.get(OrganizerSession, auth.token_hash(token))
    expires = _aware(row.expires_at) if row is not None else None
    if row is None or expires is None or expires <= (now or database_now(session)):
        return None
    return find_active_user(session=session, user_id=row.user_id)


def end_session(*, session: Session, token: str) -> None:
    session.execute(delete(OrganizerSession).where(col(OrganizerSession.token_hash) == auth.token_hash(token)))
    session.commit()


def change_password(
    *, session: Session, user_id: int, current: str, new: str, keep_session: str = "", browser: str = ""
) -> User:
    """A new password; every other session of the user ends, and every browser but this one
    (``browser``, a fresh token) is a stranger again: whoever had the old password, or a copy of a
    cookie, is out."""
    user = get_user(session=session, user_id=user_id)
    if not auth.verify_password(user.password_hash, current):
        raise Invalid("password_current_wrong")
    problem = auth.password_problem(new, user.username)
    if problem:
        raise invalid_with([problem])
    user.password_hash = auth.hash_password(new)
    session.add(user)
    session.execute(delete(OrganizerSession).where(
        col(OrganizerSession.user_id) == user_id, col(OrganizerSession.token_hash) != auth.token_hash(keep_session)
    ))
    session.execute(delete(KnownBrowser).where(col(KnownBrowser.user_id) == user_id))
    if browser:
        session.add(KnownBrowser(token_hash=auth.token_hash(browser), user_id=user_id))
    audit(session=session, actor=f"user:{user.username}", action="account.password")
    session.commit()
    return user


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


_DUMMY_HASH = auth.hash_password("not-a-real-password-only-equalizes-timing")
