"""How an error becomes an answer: a page in the phone's look, a console page, or JSON in our
words, for domain errors, pydantic's validation errors, the framework's own (404, 405) and a
number too large for the database."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import DomainError, Problem, TooManyGuesses, validation_problem
from app.routes.access import SignInRequired
from app.routes.console import message_page, sign_in_redirect
from app.routes.deps import error_response
from app.routes.pages import Page

HTTP_PROBLEMS = {404: "not_found", 405: "method_not_allowed"}


def is_phone_page(request: Request) -> bool:
    """A rater's page: answered in the phone's own look and language, not the console's."""
    return request.url.path.startswith(("/b/", "/c", "/s/", "/thanks"))


def wants_page(request: Request) -> bool:
    """Console pages answer errors with a page; the API, with JSON."""
    return not request.url.path.startswith(("/api/", "/healthz", "/readyz"))


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if isinstance(exc, TooManyGuesses):
            seconds = exc.problem.params.get("seconds", 1)
            response: Response
            if is_phone_page(request):
                page = Page(request)
                response = page.message("guess_title", "guess_body", 429,
                                        link=(page.url("/c"), page.t("type_code")), seconds=seconds)
            else:
                response = error_response(request, exc.problem, exc.status)
            response.headers["Retry-After"] = str(seconds)
            return response
        if wants_page(request):
            if isinstance(exc, SignInRequired):
                return sign_in_redirect(request)
            return message_page(request, exc)
        return error_response(request, exc.problem, exc.status, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [validation_problem(err) for err in exc.errors()]
        return error_response(request, problems[0], 422, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's own words (exc.detail) are English: ours say the same in the reader's language.
        code = HTTP_PROBLEMS.get(exc.status_code, "request_unreadable")
        problem = Problem(code)
        if exc.status_code == 404 and is_phone_page(request):
            page = Page(request)
            response: Response = page.message("page_missing_title", "page_missing_body", 404,
                                               link=(page.url("/c"), page.t("type_code")))
        elif wants_page(request):
            error = DomainError(code, **problem.params)
            error.status = exc.status_code
            response = message_page(request, error)
        else:
            response = error_response(request, problem, exc.status_code)
        # Keep what the protocol asks for, such as the Allow header of a 405.
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        # A number too large for the database's integers (an id or a year typed wrong, or a fuzzer).
        problem = Problem("request_invalid", {"error": Problem("number_out_of_range")})
        return error_response(request, problem, 422)
