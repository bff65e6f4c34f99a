"""Settings from the environment (pydantic-settings). Shared by the API and the worker."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    data_dir: Path = Field(Path("./data"), description="datasets/, runs/, db.sqlite live here")
    database_url: Optional[str] = Field(None, description="default: sqlite:///<DATA_DIR>/db.sqlite")
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_token: Optional[str] = Field(None, description="bearer token; required beyond loopback")
    allow_insecure: bool = Field(False, description="listen beyond loopback without a token")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: Optional[int] = Field(None, ge=1, le=64, description=(
        "API worker processes (uvicorn --workers); default: one per CPU core (one for an in-memory database)"))
    max_file_bytes: int = Field(2 * 1024**3, ge=1, description="largest single upload (bytes on the wire)")
    max_dataset_bytes: int = Field(50 * 1024**3, ge=1, description="largest dataset (sum of its files)")
    max_decompressed_bytes: int = Field(4 * 1024**3, ge=1,
                                        description="largest inflated .nii.gz payload")
    max_voxels: int = Field(1024**3, ge=1, description="largest voxel count x channels of one file")
    max_dim: int = Field(4096, ge=1, description="largest side of a volume or image")
    worker_heartbeat_timeout_s: float = Field(60.0, gt=0, description="silence before a job is re-queued")
    sse_poll_s: float = Field(0.25, gt=0, description="DB poll interval behind the Redis wake-up")
    sse_ping_s: float = Field(15.0, gt=0, description="SSE keep-alive comment interval")
    housekeeping_s: float = Field(300.0, gt=0, description="how often the API removes crash leftovers "
                                  "(temp files of interrupted uploads, half-done deletes); also at start")
    stale_upload_s: float = Field(60.0, ge=0, description="an upload temp file no live upload holds is "
                                  "removed once untouched this long")
    cors_origins: list[str] = Field(default_factory=list, description="empty = CORS off")
    frontend_dir: Optional[Path] = Field(None, description="default: <repo>/frontend/dist")

    @field_validator("api_token")
    @classmethod
    def _empty_is_none(cls, v: Optional[str]) -> Optional[str]:
        return v or None

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'db.sqlite'}"

    @property
    def resolved_web_concurrency(self) -> int:
        """The processes ``python -m backend`` runs: each polls, serves SSE and sweeps on its own
        (SQLite in WAL mode and every state change a conditional UPDATE make that safe)."""
        if self.web_concurrency:
            return self.web_concurrency
        if ":memory:" in self.resolved_database_url:
            return 1  # each process would have a database of its own
        return max(1, min(64, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))

    @property
    def resolved_frontend_dir(self) -> Path:
        if self.frontend_dir is not None:
            return self.frontend_dir
        return Path(__file__).resolve().parent.parent / "frontend" / "dist"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
