"""The same persistence code and routes on a real PostgreSQL (what docker compose runs)."""
from __future__ import annotations

import threading

import pytest
from upload_files import nifti_bytes
from fastapi.testclient import TestClient
from servers import fresh_database
from sqlalchemy import text

from backend import jobs, reporting
from backend.app import create_app
from backend.db import open_database
from backend.events import publish_event
from backend.leases import claim_job, requeue_stale_jobs
from backend.models import Job
from backend.settings import Settings


@pytest.fixture(scope="module")
def pg_url(postgres_cluster: str) -> str:
    return fresh_database(postgres_cluster, "api_on_postgres")


@pytest.fixture
def pg_settings(settings: Settings, pg_url: str) -> Settings:
    factory = open_database(settings.model_copy(update={"database_url": pg_url}))
    with factory() as s:  # a clean slate per test (one cluster for the module)
        s.execute(text("TRUNCATE events, metrics, samples, jobs, dataset_files, datasets, workers "
                       "RESTART IDENTITY CASCADE"))
        s.commit()
    return settings.model_copy(update={"database_url": pg_url})


def test_migrations_match_models_on_postgres(pg_settings):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from backend.models import Base

    factory = open_database(pg_settings)  # second run: a no-op
    with factory.kw["bind"].connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
        assert conn.execute(text("SELECT data_type FROM information_schema.columns WHERE table_name='events' "
                                 "AND column_name='id'")).scalar() == "bigint"


def test_claim_race_and_recovery_on_postgres(pg_settings):
    factory = open_database(pg_settings)
    with factory() as s:
        job = Job(kind="train", status="queued", config={"a": 1})
        s.add(job)
        s.commit()
        jid = job.id
    wins, barrier = [], threading.Barrier(6)

    def worker(i: int) -> None:
        with factory() as s:
            barrier.wait()
            if claim_job(s, jid, f"w{i}"):
                wins.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    with factory() as s:
        s.execute(text("UPDATE jobs SET lease_renewed_at = now() - interval '5 minutes'"))
        s.commit()
        assert requeue_stale_jobs(s, 60) == [jid]
        reporting.add_metrics(s, jid, 1, {"train_loss": float("nan")})
        ids = [publish_event(s, jid, "progress", {"step": i}).id for i in range(3)]
        s.commit()
        assert ids == sorted(ids)
        assert jobs.get_job(s, jid).last_metrics == {"step": 1, "train_loss": None}


def test_routes_on_postgres(pg_settings, redis_conn):
    app = create_app(pg_settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        ds = c.post("/api/datasets", json={"name": "pg"}).json()["id"]
        assert c.put(f"/api/datasets/{ds}/files/a.nii.gz", content=nifti_bytes()).status_code == 201
        assert c.put(f"/api/datasets/{ds}/files/a.nii.gz", content=nifti_bytes()).status_code == 201  # replace
        assert c.post(f"/api/datasets/{ds}/commit").json()["status"] == "ready"
        cfg = {"is_3d": True, "dataset": {"name": "volume3d", "image_size": 8},
               "model": {"unet": {"dim": 8, "channel_mults": [1, 2], "num_head_channels": 8}}}
        r = c.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": cfg})
        assert r.status_code == 201, r.text
        jid = r.json()["id"]
        assert c.get("/api/jobs?status=queued").json()[0]["id"] == jid
        assert c.post(f"/api/jobs/{jid}/cancel").json()["status"] == "cancelled"
        assert c.delete(f"/api/datasets/{ds}").status_code == 204
        assert c.get(f"/api/jobs/{jid}").json()["dataset_id"] is None
        assert c.get("/api/health").json()["database"] == "ok"
