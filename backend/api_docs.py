"""/docs (Swagger UI) and /redoc with their assets served by the app itself, so both work on a
machine without internet (FastAPI's own pages load them from a public CDN).

The assets are the files the pinned ``fastapi-offline`` package ships (Swagger UI's bundle and
stylesheet, ReDoc's standalone script); the pages are FastAPI's, pointed at our copies.
"""
from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# The pages may load only from the app: ReDoc's footer would otherwise fetch a logo from its
# vendor's CDN (a request that leaves the network, or fails offline).
SAME_ORIGIN_ONLY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:")


def _assets_dir() -> str:
    return str(files("fastapi_offline") / "static")


def _same_origin(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
    return page


def mount_api_docs(app: FastAPI, openapi_url: str) -> None:
    """Add GET /docs, GET /redoc and their assets (no token: like /openapi.json they only
    describe the API)."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _same_origin(get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI", swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css", swagger_favicon_url=favicon))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _same_origin(get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc", redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon, with_google_fonts=False))
