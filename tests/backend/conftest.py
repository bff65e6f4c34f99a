"""Fixtures: one real Redis per session, a fresh DATA_DIR + SQLite file per test, the app."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))  # servers.py, without making tests a package

from servers import redis_server  # noqa: E402

from backend.app import create_app  # noqa: E402
from backend.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, redis_conn: redis.Redis) -> Settings:
    return Settings(data_dir=tmp_path / "data", redis_url=redis_url, api_token=None,
                    frontend_dir=tmp_path / "no-frontend", max_file_bytes=8 << 20,
                    max_dataset_bytes=32 << 20, max_decompressed_bytes=64 << 20,
                    max_voxels=256**3, max_dim=512, sse_poll_s=0.25)


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# ---- datasets ---------------------------------------------------------------------------------

@pytest.fixture
def make_dataset(client: TestClient):
    """Create a dataset, upload {path: bytes}, optionally commit; returns its id."""

    def make(files: dict[str, bytes], commit: bool = True, name: str = "ds") -> int:
        ds = client.post("/api/datasets", json={"name": name}).json()["id"]
        for path, data in files.items():
            r = client.put(f"/api/datasets/{ds}/files/{path}", content=data)
            assert r.status_code == 201, r.text
        if commit:
            r = client.post(f"/api/datasets/{ds}/commit")
            assert r.status_code == 200, r.text
        return ds

    return make
