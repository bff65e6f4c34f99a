"""Fixtures: one real Redis per session, a fresh DATA_DIR + SQLite file per test, the app."""
from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path
from typing import Iterator

import nibabel as nib
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

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


# ---- real files -------------------------------------------------------------------------------

def nifti_bytes(shape=(8, 9, 10), dtype=np.float32, zooms=(1.0, 1.5, 2.0), gz: bool = True) -> bytes:
    data = np.random.default_rng(0).random(shape).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    img.header.set_zooms(tuple(zooms) + (1.0,) * (len(shape) - 3))
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if gz else raw  # deterministic bytes


def png_bytes(size=(16, 12), mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(shape=(4, 5, 6)) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, np.float32))
    return buf.getvalue()


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
