"""The API documentation at /docs, with Swagger UI served by the app itself (no CDN)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

# fastapi-offline ships Swagger UI 5 (needed for OpenAPI 3.1) as package data.
SWAGGER_FILES = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC = "/docs-assets"


def mount_docs(app: FastAPI) -> None:
    app.mount(DOCS_STATIC, StaticFiles(directory=SWAGGER_FILES), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "",
            title="onsite-ballot API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
        )
