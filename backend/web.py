"""The built frontend at ``/`` (SPA fallback) and gzip that never touches volumes or streams."""
from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

# Binary payloads (already compressed or large) and the event stream are never gzipped:
# gzip would buffer SSE and waste CPU on .nii.gz / safetensors.
NO_GZIP = re.compile(r"^/api/(datasets/[^/]+/files/|samples/|jobs/[^/]+/(checkpoint|events)$)")


class SelectiveGZip:
    def __init__(self, app: ASGIApp, minimum_size: int = 1024, compresslevel: int = 1):
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=compresslevel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not NO_GZIP.match(scope.get("path", "")):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def mount_frontend(app: FastAPI, dist: Path) -> None:
    """Serve ``dist`` at ``/``: real files as themselves, any other non-API path as index.html."""
    root = dist.resolve()

    @app.get("/{full_path:path}", include_in_schema=False)
    def spa(full_path: str) -> FileResponse:
        if full_path == "api" or full_path.startswith("api/"):
            raise HTTPException(404, "Not Found")
        index = root / "index.html"
        if not index.is_file():
            raise HTTPException(404, "the frontend is not built (cd frontend && npm run build); "
                                     "the API is at /api, its docs at /docs")
        if full_path:
            candidate = (root / full_path).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():
                # hashed assets never change; index.html must be revalidated
                cache = "public, max-age=31536000, immutable" if full_path.startswith("assets/") else "no-cache"
                return FileResponse(candidate, headers={"Cache-Control": cache})
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
