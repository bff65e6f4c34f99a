"""Error bodies: always ``{"detail": ...}``; never a stack trace or a server path."""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from backend.jobs import JobKind, JobNotFound, JobStateError
from backend.storage_errors import describe, storage_failure
from ddpm.config import CONFIG_KINDS, describe_errors

log = logging.getLogger("backend")


# the config schema of each job kind whose body has a ``config`` (a study's is a fine-tune config)
_CONFIG_OF_KIND = {**CONFIG_KINDS, JobKind.study: CONFIG_KINDS[JobKind.finetune]}


def _key_path(loc: tuple | list) -> tuple[Optional[str], list]:
    """('body', 'train', 'config', 'model', 'lr') -> ('train', ['config', 'model', 'lr']): the body
    prefix is implied, and a discriminated union's tag (the job kind) is not a key of the body."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    tag = None
    if parts and parts[0] in _CONFIG_OF_KIND.keys() | set(JobKind):
        tag, parts = str(parts[0]), parts[1:]
    return tag, parts


def _clean_msg(msg: str) -> str:
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def describe_request_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """A request's validation errors as ``{"loc", "msg"}`` items. A job's ``config`` is described
    by ``ddpm.config.describe_errors``, so the API says what ``ddpm train`` says of the same file
    (unknown keys with "did you mean", allowed values, cross-field reasons)."""
    items: list[dict[str, str]] = []
    for err in errors:
        tag, parts = _key_path(err.get("loc", ()))
        schema = _CONFIG_OF_KIND.get(tag) if tag else None
        if schema is not None and parts[:1] == ["config"]:
            for path, msg in describe_errors(schema, [{**err, "loc": tuple(parts[1:])}]):
                items.append({"loc": f"config.{path}" if path else "config", "msg": msg})
        else:
            items.append({"loc": ".".join(str(p) for p in parts),
                          "msg": _clean_msg(str(err.get("msg", "invalid")))})
    return items


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_request_errors(exc.errors())}, status_code=422)

    @app.exception_handler(JobStateError)
    async def _state(_: Request, exc: JobStateError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(JobNotFound)
    async def _missing(_: Request, exc: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(OSError)
    @app.exception_handler(DBAPIError)
    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        failure = storage_failure(exc, request.app.state.storage.root)
        if failure is None:
            return await _anything(request, exc)
        status, cause = failure
        log.error("%s %s: %s (%s)", request.method, request.url.path, cause, exc)
        return JSONResponse({"detail": describe(cause)}, status_code=status)

    @app.exception_handler(Exception)
    async def _anything(request: Request, exc: Exception) -> JSONResponse:
        # the traceback goes to the server log only
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
