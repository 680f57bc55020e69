"""The ceiling: the real submit path with the storing left out.

Same FastAPI, same body-limit middleware, same request model (BallotSubmit), same token
reading and answer validation against the default template, same receipt; it answers 201
without touching a database. Run it under the same launcher and worker count as the service
(app.serving, which `onsite-ballot serve` uses):

    python -m app.serving bench.ceiling_app:create_ceiling --workers N
"""

from __future__ import annotations

import gc

from fastapi import FastAPI, Request

from app.errors import DomainError, NotFound
from app.middleware import BodyLimit
from app.routes.api import COUNTED
from app.routes.deps import error_response, language
from app.schemas import BallotReceipt, BallotSubmit
from app.settings import Settings
from app.templates import default_template, parse_answers
from app.tokens import normalize


def create_ceiling() -> FastAPI:
    template = default_template()
    app = FastAPI(title="onsite-ballot ceiling")

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):  # type: ignore[no-untyped-def]
        return error_response(request, exc.problem, exc.status, exc.problems)

    @app.post("/api/v1/ballots", status_code=201)
    async def submit_ballot(body: BallotSubmit, request: Request) -> BallotReceipt:
        if normalize(body.token) is None:
            raise NotFound("token_unknown")
        parse_answers(template, body.answers)
        return BallotReceipt(status="counted", message=COUNTED[language(request)])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, limit=Settings().max_body_bytes)
    # As app.main.app_from_env does for the service: the objects of the start are never walked again.
    gc.collect()
    gc.freeze()
    return app
