"""FastAPI dependencies: settings, storage, a DB session per request, the bearer token."""
from __future__ import annotations

import hmac
from typing import Iterator, Optional

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from backend.settings import Settings
from backend.storage import Storage


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def _token_ok(given: Optional[str], expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _bearer(request: Request) -> Optional[str]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request, settings: Settings = Depends(get_app_settings)) -> None:
    """With API_TOKEN set: ``Authorization: Bearer <token>`` (constant-time compare)."""
    if settings.api_token and not _token_ok(_bearer(request), settings.api_token):
        raise _unauthorized()


def require_token_or_query(request: Request, settings: Settings = Depends(get_app_settings),
                           token: Optional[str] = Query(None, description="API token, for EventSource, "
                                                        "which cannot send headers")) -> None:
    """The events route also accepts ``?token=`` (the browser's EventSource sends no headers)."""
    if not settings.api_token:
        return
    if _token_ok(_bearer(request), settings.api_token) or _token_ok(token, settings.api_token):
        return
    raise _unauthorized()
