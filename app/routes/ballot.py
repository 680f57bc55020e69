"""The panel member's phone: the ballot page, the thanks page, typing a code, claiming one.

Server-rendered and complete without JavaScript: the ballot is a plain form whose POST goes
through the same writer as POST /api/v1/ballots, checked on the server, and shown again with
the rater's answers and the problems named next to the points. static/ballot.js makes it
better (running total, draft kept on the phone, retry), never necessary.

Nothing here logs, and nothing here stores who, where from or when: a code in a URL is all a
phone brings, and it must not reach a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import store, text
from app.db import Database
from app.errors import DomainError, Invalid, Problem
from app.routes.deps import wrong_code
from app.routes.pages import PAGE_HEADERS, Page, PageDep, meeting_of_screen_key, screen_key
from app.routes.views import ballot_view
from app.templates import COMMENT_MAX_CHARS
from app.tokens import normalize
from app.writer import WriteFailed, WriterUnavailable

router = APIRouter(include_in_schema=False)

# The claim cookie holds the phone's own code until its ballot has counted, so the same phone
# reopening the screen link finds its ballot again. Once it has counted, the code is taken off the
# phone and only "this phone has voted here" stays (CLAIM_DONE), so that it cannot claim again.
# These are the only cookies a phone gets.
CLAIM_COOKIE = "ob_claim"
CLAIM_DONE = "ob_voted"
CLAIM_COOKIE_SECONDS = 12 * 60 * 60

# A submit that has had no answer after this long is given up on the phone (its answers kept, "send
# again" offered): a held connection on bad Wi-Fi must not leave the rater looking at "sending…".
# Long enough for a slow 3G round trip and a writer batch, short enough to keep someone waiting.
SUBMIT_TIMEOUT_SECONDS = 20

# Problem codes of app.templates.parse_answers -> the shorter words shown next to the point.
POINT_PROBLEMS = {
    "ballot_missing_point": "problem_missing",
    "ballot_unknown_grade": "problem_grade",
    "ballot_not_number": "problem_not_number",
    "ballot_number_range": "problem_range",
    "ballot_number_step": "problem_step",
}


def _database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def _access(request: Request, code: str) -> store.BallotAccess:
    with _database(request).reading() as conn:
        return store.ballot_access(conn=conn, code=code, keys=request.app.state.keys)


def redirect(url: str, status: int = 303) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers=PAGE_HEADERS)


def unknown_code(page: Page, status: int = 404) -> Response:
    wrong_code(page.request)  # a guessing address gets the "please wait" page instead (app.guard)
    return page.message("unknown_title", "unknown_body", status, link=(page.url("/c"), page.t("type_code")))


def refusal(page: Page, code: str, access: store.BallotAccess, *, posted: bool) -> Response | None:
    """The plain page for a code that cannot vote now; None when the ballot may be shown."""
    if access.state == "unknown":
        return unknown_code(page)
    if access.state == "void":
        return page.message("void_title", "void_body", 410)
    if access.state == "spent":
        # The same answer whatever is sent with a spent code: nothing is kept to compare it with,
        # and an answer that differed would prove to a coercer how the code was used.
        if posted:
            return redirect(thanks_url(page, access, again=True))
        return page.message("spent_title", "spent_body", 200, counted_code=code)
    if access.meeting_state == "draft":
        return page.message("not_open_title", "not_open_body", 409)
    if access.meeting_state != "open":
        return page.message("closed_title", "closed_body", 409)
    return None


# ---- the ballot --------------------------------------------------------------------------------


def render_ballot(
    page: Page, code: str, access: store.BallotAccess, *, status: int = 200,
    answers: Mapping[str, Any] | None = None, comment: str = "", problems: list[Problem] | None = None,
    notice: str = "",
) -> Response:
    template = access.template
    assert template is not None, "a code with a meeting has a template"
    by_point: dict[str, str] = {}
    general: list[str] = []
    comment_problem = ""
    for problem in problems or []:
        point = problem.params.get("point")
        if problem.code in POINT_PROBLEMS and isinstance(point, str):
            by_point.setdefault(point, page.t(POINT_PROBLEMS[problem.code], **problem.params))
        elif problem.code == "ballot_unknown_point":
            text = page.t("problem_unknown_point")
            if text not in general:
                general.append(text)
        elif problem.code == "ballot_comment_too_long":
            comment_problem = page.t("problem_comment_long", **problem.params)
        elif problem.code == "text_control":
            comment_problem = page.t("problem_comment_control")
        else:
            general.append(problem.message(page.lang))
    count = len(by_point) + len(general) + bool(comment_problem)
    return page.render(
        "ballot.html", status,
        code=code, access=access,
        template_name=(template.name_en or template.name) if page.lang == "en" else template.name,
        point_count=len(template.points),
        items=ballot_view(template, page.lang, answers or {}, by_point),
        comment=comment, comment_max=COMMENT_MAX_CHARS, comment_problem=comment_problem,
        general=general, notice=notice or (page.t("fix_below", n=count) if count else ""),
        form_action=page.url(f"/b/{code}"), submit_timeout=SUBMIT_TIMEOUT_SECONDS,
        thanks_url=thanks_url(page, access), thanks_again_url=thanks_url(page, access, again=True),
    )


def thanks_url(page: Page, access: store.BallotAccess, *, again: bool = False) -> str:
    """Where a counted ballot lands. A code claimed from the screen lands under its screen link,
    where the phone's claim cookie lives, so that the code can be taken off the phone."""
    path = "/thanks"
    if access.mode == "screen" and access.meeting_id is not None:
        path = f"/s/{screen_key(page.request.app.state.settings.secret(), access.meeting_id)}/thanks"
    return page.url(path, again="1") if again else page.url(path)


@router.get("/b/{code}")
def ballot_page(code: str, request: Request, page: PageDep) -> Response:
    canonical = normalize(code)
    if canonical is None:
        return unknown_code(page)
    if canonical != code:
        # A typed or re-cased link: one address per ballot keeps the phone's draft in one place.
        return redirect(page.url(f"/b/{canonical}"), 307)
    access = _access(request, canonical)
    return refusal(page, canonical, access, posted=False) or render_ballot(page, canonical, access)


async def _read_form(request: Request) -> tuple[dict[str, Any], str] | None:
    try:
        form = await request.form()
    except StarletteHTTPException:  # not a form, or too many fields
        return None
    try:
        return _form_answers(form)
    finally:
        await form.close()  # an uploaded file, if a forged form sent one


def _form_answers(form: FormData) -> tuple[dict[str, Any], str] | None:
    """The answers and comment of a posted ballot form; None when it is not one."""
    answers: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        if not all(isinstance(value, str) for value in values):
            return None  # a file: no form of ours sends one
        if key == "comment":
            continue
        answers[key] = values[0] if len(values) == 1 else values
    comments = form.getlist("comment")
    if len(comments) > 1:
        return None
    comment = comments[0] if comments else ""
    assert isinstance(comment, str)
    return answers, comment


@router.post("/b/{code}")
async def submit_form(code: str, request: Request, page: PageDep) -> Response:
    """The ballot without JavaScript: through the writer, like POST /api/v1/ballots."""
    canonical = normalize(code)
    if canonical is None:
        return unknown_code(page)
    parsed = await _read_form(request)
    back = (page.url(f"/b/{canonical}"), page.t("back_to_ballot"))
    if parsed is None:
        return page.message("form_title", "form_body", 400, link=back)
    answers, comment = parsed
    problem = None
    if len(comment) > COMMENT_MAX_CHARS:
        problem = Problem("ballot_comment_too_long", {"max": COMMENT_MAX_CHARS, "length": len(comment)})
    elif text.has_control(comment, paragraph=True):  # as BallotSubmit refuses it on the JSON path
        problem = Problem("text_control", {"field": "comment"})
    if problem is not None:
        access = await run_in_threadpool(_access, request, canonical)
        return refusal(page, canonical, access, posted=True) or render_ballot(
            page, canonical, access, status=422, answers=answers, comment=comment, problems=[problem]
        )
    try:
        outcome = await request.app.state.writer.submit(
            store.Submission(code=canonical, answers=answers, comment=comment or None)
        )
    except WriterUnavailable:
        outcome = store.Outcome(error=WriteFailed("internal"))
    if outcome.status is not None:
        access = await run_in_threadpool(_access, request, canonical)
        return redirect(thanks_url(page, access, again=outcome.status == "already_counted"))
    return await _refused(request, page, canonical, outcome.error, answers, comment)


async def _refused(
    request: Request, page: Page, code: str, error: DomainError | None, answers: dict[str, Any], comment: str
) -> Response:
    access = await run_in_threadpool(_access, request, code)
    if isinstance(error, Invalid) and access.state == "ready":
        return render_ballot(page, code, access, status=422, answers=answers, comment=comment,
                             problems=error.problems or [error.problem])
    refused = refusal(page, code, access, posted=True)
    if refused is not None:
        return refused
    # Nothing was stored (the writer failed, or the state changed under us): keep every answer.
    return render_ballot(page, code, access, status=503, answers=answers, comment=comment,
                         notice=page.t("write_failed"))


@router.get("/thanks")
def thanks(page: PageDep, again: str = "") -> Response:
    """Says that it counted and that it is anonymous; shows nothing of what was chosen."""
    return page.render("thanks.html", again=again == "1")


# ---- typing a code -----------------------------------------------------------------------------


@router.get("/c")
def entry_page(page: PageDep) -> Response:
    return page.render("entry.html", typed="", error="")


@router.post("/c")
async def entry(request: Request, page: PageDep) -> Response:
    # A POST, not a GET form: a code in a query string is a code in every log on the way.
    try:
        form = await request.form()
    except StarletteHTTPException:
        typed: Any = ""
    else:
        typed = form.get("code", "")
        await form.close()
    typed = typed if isinstance(typed, str) else ""
    code = normalize(typed)
    if code is None:
        return page.render("entry.html", 422, typed=typed[:40], error=page.t("entry_invalid"))
    return redirect(page.url(f"/b/{code}"))


# ---- claiming a code from the screen -----------------------------------------------------------


def _own_claim(request: Request, meeting_id: int) -> str | None:
    """The phone's own unspent code of this meeting, from its claim cookie."""
    code = normalize(request.cookies.get(CLAIM_COOKIE, ""))
    if code is None:
        return None
    with _database(request).reading() as conn:
        access = store.ballot_access(conn=conn, code=code, keys=request.app.state.keys)
    return code if access.state == "ready" and access.meeting_id == meeting_id else None


def _has_voted(request: Request) -> bool:
    """This phone's ballot from this screen link has counted: the cookie, or a claim now spent."""
    if request.cookies.get(CLAIM_DONE):
        return True
    code = normalize(request.cookies.get(CLAIM_COOKIE, ""))
    if code is None:
        return False
    with _database(request).reading() as conn:
        return store.ballot_access(conn=conn, code=code, keys=request.app.state.keys).state == "spent"


def _voted(response: Response, request: Request, key: str) -> Response:
    """Take the code off the phone once its ballot has counted, and remember only that it voted."""
    secure = request.app.state.settings.base_url.startswith("https:")
    response.delete_cookie(CLAIM_COOKIE, path=f"/s/{key}", httponly=True, samesite="lax", secure=secure)
    response.set_cookie(CLAIM_DONE, "1", max_age=CLAIM_COOKIE_SECONDS, path=f"/s/{key}", httponly=True,
                        samesite="lax", secure=secure)
    return response


def screen_meeting_of(request: Request, key: str) -> store.ScreenMeeting | None:
    meeting_id = meeting_of_screen_key(request.app.state.settings.secret(), key)
    if meeting_id is None:
        return None
    with _database(request).reading() as conn:
        meeting = store.screen_meeting(conn=conn, meeting_id=meeting_id)
    return meeting if meeting is not None and meeting.mode == "screen" else None


def _no_claim(page: Page, meeting: store.ScreenMeeting) -> Response | None:
    if meeting.state == "draft":
        return page.message("not_open_title", "not_open_body", 409)
    if meeting.state != "open":
        return page.message("closed_title", "closed_body", 409)
    if meeting.claimed >= meeting.attendance:
        return page.message("pool_empty_title", "pool_empty_body", 409, n=meeting.attendance)
    return None


def link_unknown(page: Page) -> Response:
    wrong_code(page.request)  # a screen key is guessed like a code
    return page.message("link_unknown_title", "link_unknown_body", 404)


@router.get("/s/{key}")
def claim_page(key: str, request: Request, page: PageDep) -> Response:
    """A button, not an automatic claim: a link preview or prefetch must not empty the pool."""
    meeting = screen_meeting_of(request, key)
    if meeting is None:
        return link_unknown(page)
    if _has_voted(request):
        return _voted(page.message("spent_title", "spent_body", 200), request, key)
    own = _own_claim(request, meeting.id)
    if own is not None:
        return redirect(page.url(f"/b/{own}"))
    return _no_claim(page, meeting) or page.render(
        "claim.html", meeting=meeting, action=page.url(f"/s/{key}")
    )


@router.get("/s/{key}/thanks")
def screen_thanks(key: str, request: Request, page: PageDep, again: str = "") -> Response:
    """The thanks page of a ballot claimed from the screen: the one place its claim cookie is sent to."""
    if screen_meeting_of(request, key) is None:
        return link_unknown(page)
    response = page.render("thanks.html", again=again == "1")
    return _voted(response, request, key) if _has_voted(request) else response


@router.post("/s/{key}")
def claim(key: str, request: Request, page: PageDep) -> Response:
    meeting = screen_meeting_of(request, key)
    if meeting is None:
        return link_unknown(page)
    if _has_voted(request):
        return _voted(page.message("spent_title", "spent_body", 200), request, key)
    code = _own_claim(request, meeting.id)
    if code is None:
        with _database(request).writing() as conn:
            code = store.claim_screen_code(conn=conn, meeting_id=meeting.id, keys=request.app.state.keys)
    if code is None:
        meeting = screen_meeting_of(request, key) or meeting
        return _no_claim(page, meeting) or page.message("pool_empty_title", "pool_empty_body", 409,
                                                        n=meeting.attendance)
    # The projector counts claims: tell it (and the dashboards) that one more phone has a code.
    hub = getattr(request.app.state, "hub", None)
    if hub is not None:
        hub.changed([meeting.id])
    response = redirect(page.url(f"/b/{code}"))
    response.set_cookie(
        CLAIM_COOKIE, code, max_age=CLAIM_COOKIE_SECONDS, path=f"/s/{key}", httponly=True, samesite="lax",
        secure=request.app.state.settings.base_url.startswith("https:"),
    )
    return response
