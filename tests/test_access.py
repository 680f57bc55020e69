"""Every route × every role → the exact answer. A route missing from the table fails the test.

Each role starts from the same fresh database: unit JL001 (党政机关) with draft meeting 1. The probes
run in table order; the few that change state come last, so every admitted role sees the same states.
Roles: nobody; viewer, secretary and admin signed in (viewer and secretary for 党政机关); "other", a
secretary for 中直单位 only; "api", an admin API key; "export", an export-only API key.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import _IncludedRouter
from fastapi.testclient import TestClient
from starlette.routing import Mount

from app import store
from app.db import Database
from app.schemas import MeetingCreate
from tests.conftest import ALL_A, KEYS

ROLES = ("nobody", "viewer", "secretary", "other", "admin", "api", "export")
READERS = frozenset({"viewer", "secretary", "other", "admin", "api"})
STAFF = frozenset({"secretary", "other", "admin", "api"})
ADMINS = frozenset({"admin", "api"})
EXPORTERS = frozenset({"admin", "api", "export"})
PASSWORD = "correct-horse-battery"
UNKNOWN_CODE = "K7MQ2X9PAR"


def public(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


def guarded(admitted: frozenset[str], status: int, *, page: bool, category: bool = False, **overrides: int) -> dict[str, int]:
    """Nobody: 401 (API) or 303 to the sign-in page; roles not admitted: 403; "other" also 403 where
    the route checks the meeting's or unit's category."""
    table = {}
    for role in ROLES:
        if role == "nobody":
            table[role] = 303 if page else 401
        elif role not in admitted or (category and role == "other"):
            table[role] = 403
        else:
            table[role] = status
    table.update(overrides)
    return table


def api(admitted: frozenset[str], status: int, **kw: Any) -> dict[str, int]:
    return guarded(admitted, status, page=False, **kw)


def page(admitted: frozenset[str], status: int, **kw: Any) -> dict[str, int]:
    return guarded(admitted, status, page=True, **kw)


# (method, path template, probe path, body) -> role -> status. Order matters: state changes come last.
TABLE: list[tuple[str, str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/healthz", "/healthz", None, public(200)),
    ("GET", "/readyz", "/readyz", None, public(200)),
    ("GET", "/docs", "/docs", None, public(200)),
    ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, public(200)),
    ("GET", "/", "/", None, public(303)),
    ("GET", "/login", "/login", None, {**public(303), "nobody": 200}),
    ("POST", "/login", "/login", {}, public(403)),
    # the phone's pages: public, and the code is the only right to vote
    ("GET", "/b/{code}", f"/b/{UNKNOWN_CODE}", None, public(404)),
    ("POST", "/b/{code}", f"/b/{UNKNOWN_CODE}", {}, public(404)),
    ("GET", "/thanks", "/thanks", None, public(200)),
    ("GET", "/c", "/c", None, public(200)),
    ("POST", "/c", "/c", {}, public(422)),
    ("GET", "/s/{key}", "/s/1-nokey", None, public(404)),
    ("POST", "/s/{key}", "/s/1-nokey", {}, public(404)),
    ("GET", "/s/{key}/thanks", "/s/1-nokey/thanks", None, public(404)),
    ("GET", "/s/{key}/screen", "/s/1-nokey/screen", None, public(404)),
    ("GET", "/s/{key}/events", "/s/1-nokey/events", None, public(404)),
    ("POST", "/api/v1/ballots", "/api/v1/ballots", {}, public(422)),
    # reading
    ("GET", "/api/v1/units", "/api/v1/units", None, api(READERS, 200)),
    ("GET", "/api/v1/templates", "/api/v1/templates", None, api(READERS, 200)),
    ("GET", "/api/v1/templates/{template_id}", "/api/v1/templates/default", None, api(READERS, 200)),
    ("GET", "/api/v1/meetings", "/api/v1/meetings", None, api(READERS, 200)),
    ("GET", "/api/v1/meetings/{meeting_id}", "/api/v1/meetings/1", None, api(READERS, 200, category=True)),
    ("GET", "/api/v1/meetings/{meeting_id}/tally", "/api/v1/meetings/1/tally", None, api(READERS, 200, category=True)),
    ("GET", "/api/v1/meetings/{meeting_id}/result", "/api/v1/meetings/1/result", None, api(READERS, 409, category=True)),
    ("GET", "/meetings", "/meetings", None, page(READERS, 200)),
    ("GET", "/meetings/{meeting_id}", "/meetings/1", None, page(READERS, 200, category=True)),
    ("GET", "/units", "/units", None, page(READERS, 200)),
    ("GET", "/ballot-templates", "/ballot-templates", None, page(READERS, 200)),
    ("GET", "/ballot-templates/{template_id}", "/ballot-templates/default", None, page(READERS, 200)),
    ("GET", "/account/password", "/account/password", None, page(READERS, 200)),
    ("GET", "/overview", "/overview", None, page(READERS, 200)),
    ("GET", "/results", "/results", None, page(READERS, 200)),
    ("GET", "/exports/results.{kind}", "/exports/results.csv", None, page(READERS, 200)),
    ("GET", "/exports/overview.{kind}", "/exports/overview.xlsx?year=2026", None, page(READERS, 200)),
    ("GET", "/meetings/{meeting_id}/live", "/meetings/1/live", None, page(READERS, 200, category=True)),
    ("GET", "/meetings/{meeting_id}/live/fragment", "/meetings/1/live/fragment", None, page(READERS, 200, category=True)),
    ("GET", "/meetings/{meeting_id}/projector", "/meetings/1/projector", None, page(READERS, 200, category=True)),
    ("GET", "/meetings/{meeting_id}/report", "/meetings/1/report", None, page(READERS, 409, category=True)),
    ("GET", "/api/v1/meetings/{meeting_id}/report", "/api/v1/meetings/1/report", None, api(READERS, 409, category=True)),
    # an endless stream for a meeting that exists; probed on one that does not, after the role check
    ("GET", "/api/v1/meetings/{meeting_id}/events", "/api/v1/meetings/999/events", None, api(READERS, 404)),
    # staff pages and reads
    ("GET", "/units/new", "/units/new", None, page(STAFF, 200)),
    ("GET", "/units/{code}/edit", "/units/JL001/edit", None, page(STAFF, 200, category=True)),
    ("GET", "/units/import", "/units/import", None, page(STAFF, 200)),
    ("GET", "/meetings/new", "/meetings/new", None, page(STAFF, 200)),
    ("GET", "/api/v1/meetings/{meeting_id}/screen", "/api/v1/meetings/1/screen", None, api(STAFF, 409, category=True)),
    # administration
    ("GET", "/accounts", "/accounts", None, page(ADMINS, 200)),
    ("GET", "/api-keys", "/api-keys", None, page(ADMINS, 200)),
    ("GET", "/audit", "/audit", None, page(ADMINS, 200)),
    ("GET", "/ballot-templates-new", "/ballot-templates-new", None, page(ADMINS, 200)),
    ("GET", "/api/v1/accounts", "/api/v1/accounts", None, api(ADMINS, 200)),
    ("GET", "/api/v1/api-keys", "/api/v1/api-keys", None, api(ADMINS, 200)),
    ("GET", "/api/v1/audit", "/api/v1/audit", None, api(ADMINS, 200)),
    # changes that the body refuses after the role is admitted: nothing is written
    ("POST", "/api/v1/units", "/api/v1/units", {}, api(STAFF, 422)),
    ("PATCH", "/api/v1/units/{code}", "/api/v1/units/JL001", {}, api(STAFF, 422)),
    ("POST", "/api/v1/units/import", "/api/v1/units/import", {}, api(STAFF, 422)),
    ("POST", "/api/v1/templates", "/api/v1/templates", {}, api(ADMINS, 422)),
    ("POST", "/api/v1/meetings", "/api/v1/meetings", {}, api(STAFF, 422)),
    ("POST", "/api/v1/meetings/{meeting_id}/reopen", "/api/v1/meetings/1/reopen", {}, api(STAFF, 422)),
    ("POST", "/api/v1/meetings/{meeting_id}/void", "/api/v1/meetings/1/void", {}, api(STAFF, 422)),
    ("DELETE", "/api/v1/meetings/{meeting_id}", "/api/v1/meetings/999", None, api(STAFF, 404)),
    ("POST", "/api/v1/meetings/{meeting_id}/tokens", "/api/v1/meetings/1/tokens", {}, api(STAFF, 422)),
    ("POST", "/api/v1/meetings/{meeting_id}/cards", "/api/v1/meetings/1/cards", {}, api(STAFF, 422)),
    ("POST", "/api/v1/meetings/{meeting_id}/tokens/void", "/api/v1/meetings/1/tokens/void", {"group": "none"}, api(STAFF, 200, category=True)),
    ("POST", "/api/v1/accounts", "/api/v1/accounts", {}, api(ADMINS, 422)),
    ("PATCH", "/api/v1/accounts/{user_id}", "/api/v1/accounts/1", {}, api(ADMINS, 422)),
    ("POST", "/api/v1/api-keys", "/api/v1/api-keys", {}, api(ADMINS, 422)),
    ("POST", "/api/v1/api-keys/{key_id}/revoke", "/api/v1/api-keys/999/revoke", {}, api(ADMINS, 404)),
    ("POST", "/units/new", "/units/new", {}, page(STAFF, 422)),
    ("POST", "/units/{code}/edit", "/units/JL001/edit", {}, page(STAFF, 422, category=True)),
    ("POST", "/units/{code}/delete", "/units/NOPE/delete", {}, page(STAFF, 404)),
    ("DELETE", "/api/v1/units/{code}", "/api/v1/units/NOPE", None, api(STAFF, 404)),
    ("POST", "/units/import", "/units/import", {}, page(STAFF, 422)),
    ("POST", "/meetings/new", "/meetings/new", {}, page(STAFF, 422)),
    ("POST", "/meetings/{meeting_id}/cards", "/meetings/1/cards", {}, page(STAFF, 422, category=True)),
    ("POST", "/meetings/{meeting_id}/cards/all", "/meetings/1/cards/all", {}, page(STAFF, 422, category=True)),
    ("POST", "/meetings/{meeting_id}/void", "/meetings/1/void", {"group": "none"}, page(STAFF, 303, category=True)),
    ("POST", "/meetings/{meeting_id}/reopen", "/meetings/1/reopen", {}, page(STAFF, 422, category=True)),
    # voiding without a reason is refused; deleting first asks to confirm: nothing is written
    ("POST", "/meetings/{meeting_id}/void-meeting", "/meetings/1/void-meeting", {}, page(STAFF, 422, category=True)),
    ("POST", "/meetings/{meeting_id}/delete", "/meetings/1/delete", {}, page(STAFF, 200, category=True)),
    ("POST", "/ballot-templates-new", "/ballot-templates-new", {}, page(ADMINS, 422)),
    ("POST", "/accounts", "/accounts", {}, page(ADMINS, 422)),
    ("POST", "/accounts/{user_id}", "/accounts/999", {}, page(ADMINS, 404)),
    ("POST", "/api-keys", "/api-keys", {}, page(ADMINS, 422)),
    ("POST", "/api-keys/{key_id}/revoke", "/api-keys/999/revoke", {}, page(ADMINS, 404)),
    ("POST", "/account/password", "/account/password", {}, page(READERS, 422, api=404)),
    # results export (issue 6): admin and export keys read results; admin alone the rest
    ("GET", "/api/v1/results", "/api/v1/results", None, api(EXPORTERS, 200)),
    ("GET", "/api/v1/results/schema", "/api/v1/results/schema", None, api(EXPORTERS, 200)),
    ("GET", "/api/v1/overview", "/api/v1/overview?year=2026", None, api(EXPORTERS, 200)),
    ("POST", "/api/v1/composite", "/api/v1/composite", {}, api(EXPORTERS, 422)),
    ("GET", "/api/v1/meetings/{meeting_id}/audit", "/api/v1/meetings/1/audit", None, api(ADMINS, 409)),
    ("GET", "/api/v1/webhooks", "/api/v1/webhooks", None, api(ADMINS, 200)),
    ("POST", "/api/v1/webhooks", "/api/v1/webhooks", {}, api(ADMINS, 422)),
    ("DELETE", "/api/v1/webhooks/{webhook_id}", "/api/v1/webhooks/999", None, api(ADMINS, 404)),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries", "/api/v1/webhooks/999/deliveries", None, api(ADMINS, 404)),
    ("GET", "/api/v1/webhook-deliveries/{delivery_id}", "/api/v1/webhook-deliveries/none", None, api(ADMINS, 404)),
    ("POST", "/api/v1/webhook-deliveries/{delivery_id}/resend", "/api/v1/webhook-deliveries/none/resend", None, api(ADMINS, 404)),
    # state changes, last: draft -> open -> closed
    ("POST", "/api/v1/meetings/{meeting_id}/open", "/api/v1/meetings/1/open", None, api(STAFF, 200, category=True)),
    ("POST", "/meetings/{meeting_id}/open", "/meetings/1/open", {}, page(STAFF, 409, category=True)),
    ("POST", "/api/v1/meetings/{meeting_id}/close", "/api/v1/meetings/1/close", None, api(STAFF, 200, category=True)),
    ("POST", "/meetings/{meeting_id}/close", "/meetings/1/close", {}, page(STAFF, 409, category=True)),
    ("POST", "/logout", "/logout", {}, page(READERS, 303)),
]


def app_routes(client: TestClient) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, static file mounts aside."""
    found: set[tuple[str, str]] = set()
    for route in client.app.router.routes:  # type: ignore[attr-defined]
        contexts = route.effective_route_contexts() if isinstance(route, _IncludedRouter) else [route]
        for context in contexts:
            if isinstance(context, Mount):
                continue
            for method in sorted(getattr(context, "methods", None) or []):
                if method != "HEAD":
                    found.add((method, context.path))
    return found


def test_the_table_covers_every_route(client: TestClient) -> None:
    covered = {(method, path) for method, path, _, _, _ in TABLE}
    assert app_routes(client) - covered == set(), "a route without a decision about who may use it"
    assert covered - app_routes(client) == set(), "the table names a route the app no longer has"


def _seed(database: Database) -> dict[str, str]:
    with database.session() as session:
        store.create_unit(session=session, actor="t", code="JL001", name="测试单位", category="party_gov")
        store.create_meeting(session=session, actor="t", body=MeetingCreate(
            unit_code="JL001", year=2026, date="2026-12-03", title="述职评议会", attendance=30))  # type: ignore[arg-type]
        for username, role, categories in (("admin1", "admin", []), ("viewer1", "viewer", ["party_gov"]),
                                           ("sec1", "secretary", ["party_gov"]), ("sec2", "secretary", ["central"])):
            store.create_user(session=session, actor="t", username=username, display_name=username,
                              password=PASSWORD, role=role, categories=categories)
        return {"api": store.create_api_key(session=session, name="admin-key", scopes="admin"),
                "export": store.create_api_key(session=session, name="export-key", scopes="export")}


def sign_in(client: TestClient, username: str) -> str:
    """Sign in through the form, as a person would; answers the session's CSRF token."""
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf.group(1)},
                    follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/meetings")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/meetings").text)
    assert token is not None
    return token.group(1)


@pytest.mark.parametrize("role", ROLES)
def test_route_role_table(role: str, client: TestClient, database: Database) -> None:
    keys = _seed(database)
    headers: dict[str, str] = {}
    if role in ("api", "export"):
        headers["Authorization"] = f"Bearer {keys[role]}"
    elif role != "nobody":
        username = {"viewer": "viewer1", "secretary": "sec1", "other": "sec2", "admin": "admin1"}[role]
        headers["X-CSRF-Token"] = sign_in(client, username)
    answers = []
    for method, _, path, body, expected in TABLE:
        if path == "/api/v1/meetings/1/close":
            # A meeting closes only with K ballots: cast them if the role could open it.
            with database.session() as session:
                codes = store.mint_tokens(session=session, actor="t", meeting_id=1, count=5, group=None, keys=KEYS)
            for code, _ in codes:
                client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A})
        if method == "GET":
            r = client.get(path, headers=headers, follow_redirects=False)
        elif path.startswith("/api/"):
            r = client.request(method, path, json=body, headers=headers, follow_redirects=False)
        else:
            r = client.request(method, path, data=body or {}, headers=headers, follow_redirects=False)
        answers.append((method, path, r.status_code))
        if expected[role] == 303 and role == "nobody" and path not in ("/",):
            assert r.headers["location"].startswith("/login?next="), (method, path)
    assert answers == [(method, path, expected[role]) for method, _, path, _, expected in TABLE]
