"""Scale-out as deployed: the API and two workers as separate processes sharing PostgreSQL,
Redis and one data folder (what docker compose and several machines do), each job run once."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "worker"))
sys.path.insert(0, str(HERE.parent / "backend"))  # servers.py; this file also runs on its own

import worker_helpers as helpers  # noqa: E402
from servers import fresh_database  # noqa: E402
from worker_servers import ApiServer, WorkerProcess, base_env, redis_server  # noqa: E402


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory, postgres_cluster):
    root = tmp_path_factory.mktemp("scaleout")
    with contextlib.ExitStack() as es:
        db_url = fresh_database(postgres_cluster, "scaleout")
        redis_url = es.enter_context(redis_server())
        env = base_env(root / "shared-data", redis_url, DATABASE_URL=db_url)
        api = ApiServer(env, root)
        es.callback(api.stop)
        workers = [WorkerProcess(f"pg-worker-{i}", env, root) for i in (1, 2)]
        for w in workers:
            es.callback(w.stop)
        for w in workers:
            w.wait_live(api.client)
        yield api, workers, db_url


def test_two_workers_share_postgres_and_run_each_job_exactly_once(pg_stack):
    api, workers, db_url = pg_stack
    client = api.client
    assert client.get("/api/health").json() == {
        "status": "ok", "database": "ok", "broker": "ok", "workers": 2,
        "live_workers": [{"queues": ["cpu"], "device": "cpu", "gpus": 1}] * 2}
    ds = helpers.upload_dataset(client, "pg-shapes",
                                [(f"shapes/img{i:02d}.png", helpers.png_bytes(i)) for i in range(6)])
    cfg = helpers.config(helpers.CONFIG_2D, iterations=12, freq_metrics=12, freq_checkpoint=12)
    jobs = [helpers.create_train_job(client, ds, cfg)["id"] for _ in range(4)]
    done = [helpers.wait_job(client, j, timeout=240) for j in jobs]

    assert [j["status"] for j in done] == ["succeeded"] * 4, [j["error"] for j in done]
    names = {w.name for w in workers}
    assert {j["worker"] for j in done} == names, "both workers took jobs"
    # The rows live in PostgreSQL, and every job went from queued to running exactly once.
    with sa.create_engine(db_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from jobs")).scalar() == 4
        for job_id in jobs:
            rows = conn.execute(sa.text("select data from events where job_id = :j and type = 'status' "
                                        "order by id"), {"j": job_id}).scalars().all()
            statuses = [row["status"] for row in rows]
            assert statuses.count("running") == 1 and statuses[-1] == "succeeded", statuses
