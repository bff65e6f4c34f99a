"""Error bodies: always ``{"detail": ...}``; never a stack trace or a server path."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from backend.jobs import JobNotFound, JobStateError

log = logging.getLogger("backend")


def loc_to_str(loc: tuple | list) -> str:
    """('body', 'config', 'model', 'lr') -> 'config.model.lr' (the body prefix is implied)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    # a discriminated union adds the tag as a path step: body.train.config -> config
    if parts and parts[0] in ("train", "sample"):
        parts = parts[1:]
    return ".".join(parts)


def _clean_msg(msg: str) -> str:
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = [{"loc": loc_to_str(e.get("loc", ())), "msg": _clean_msg(str(e.get("msg", "invalid")))}
                 for e in exc.errors()]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(JobStateError)
    async def _state(_: Request, exc: JobStateError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(JobNotFound)
    async def _missing(_: Request, exc: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Exception)
    async def _anything(request: Request, exc: Exception) -> JSONResponse:
        # the traceback goes to the server log only
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
