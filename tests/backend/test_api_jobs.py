"""Job routes: create (validation, task on Redis with only the id), list/filter, detail, metrics,
samples, cancel/resume/delete with their 409s, checkpoint and log downloads."""
from __future__ import annotations

import base64
import json
import time

import pytest
from upload_files import nifti_bytes, png_bytes

from backend import jobs as jobstate
from backend import leases, reporting
from backend.models import Job
from ddpm.config import Sampler

CFG_3D = {"is_3d": True, "model": {"iterations": 20, "unet": {"dim": 8, "channel_mults": [1, 2],
                                                              "num_head_channels": 8}},
          "dataset": {"name": "volume3d", "image_size": 8, "batch_size": 1}}
CFG_2D = {"is_3d": False, "model": {"iterations": 5}, "dataset": {"name": "image2d", "image_size": 16}}


def queued_tasks(redis_conn, queue: str) -> list[dict]:
    """The Celery messages waiting in a Redis queue (kombu keeps them in a list named as the queue)."""
    out = []
    for raw in redis_conn.lrange(queue, 0, -1):
        msg = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(msg["body"]))
        out.append({"task": msg["headers"]["task"], "args": args, "kwargs": kwargs})
    return out


@pytest.fixture
def ds3d(make_dataset) -> int:
    return make_dataset({"v/a.nii.gz": nifti_bytes(), "v/b.nii.gz": nifti_bytes()})


def train(client, ds, cfg=None, **kw):
    return client.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": cfg or CFG_3D, **kw})


def test_create_train_job_fills_paths_and_enqueues_only_the_id(client, settings, redis_conn, ds3d):
    r = train(client, ds3d)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["kind"] == "train" and job["dataset_id"] == ds3d
    root = settings.resolved_data_dir
    assert job["config"]["dataset"]["path"] == str(root / "datasets" / str(ds3d) / "files")
    assert job["config"]["experiment_path"] == str(root / "runs")
    assert job["config"]["model"]["lr"] == 1e-4  # defaults resolved and stored
    assert job["progress"] == {"step": 0, "total": 20, "fraction": 0.0, "eta_s": None, "it_s": None, "loss": None}
    assert queued_tasks(redis_conn, "cpu") == [{"task": "ddpm.train", "args": [job["id"]], "kwargs": {}}]
    assert queued_tasks(redis_conn, "gpu") == []


def test_device_routing(client, app, redis_conn, ds3d):
    assert train(client, ds3d, device="gpu").json()["queue"] == "gpu"
    assert train(client, ds3d, device="auto").json()["queue"] == "cpu"  # no GPU worker alive
    with app.state.session_factory() as s:
        leases.heartbeat(s, "gpu-worker", queues=["gpu", "cpu"], device="cuda:0")
    assert train(client, ds3d).json()["queue"] == "gpu"
    assert train(client, ds3d, cfg={**CFG_3D, "gpu": -1}).json()["queue"] == "cpu"
    assert len(queued_tasks(redis_conn, "gpu")) == 2 and len(queued_tasks(redis_conn, "cpu")) == 2


def test_bad_config_is_422_naming_each_key(client, redis_conn, ds3d):
    cfg = {**CFG_3D, "model": {**CFG_3D["model"], "lr": -1, "optimiser": "sgd"}}
    r = train(client, ds3d, cfg)
    assert r.status_code == 422
    detail = {d["loc"]: d["msg"] for d in r.json()["detail"]}
    assert "config.model.lr" in detail
    assert "config.model.optimiser" in detail and "optimizer" in detail["config.model.optimiser"]
    assert queued_tasks(redis_conn, "cpu") == []
    assert client.get("/api/jobs").json() == []


def test_config_422_says_what_the_cli_says(client, ds3d):
    """Allowed values, unknown keys with a suggestion and cross-field reasons, each by key path."""
    cfg = {**CFG_3D, "model": {**CFG_3D["model"], "optimizer": "sgd",
                               "unet": {**CFG_3D["model"]["unet"], "num_head_channels": 7}},
           "datset": {}}
    r = train(client, ds3d, cfg)
    assert r.status_code == 422
    detail = {d["loc"]: d["msg"] for d in r.json()["detail"]}
    assert detail["config.model.optimizer"].startswith("'sgd' is not allowed; allowed values: 'adam', 'adamw'")
    assert "did you mean 'dataset'" in detail["config.datset"]
    r = train(client, ds3d, {**CFG_3D, "model": {**CFG_3D["model"], "unet": {**CFG_3D["model"]["unet"],
                                                                             "num_head_channels": 7}}})
    assert r.status_code == 422
    [item] = r.json()["detail"]
    assert item["loc"] == "config.model.unet.num_head_channels" and "7" in item["msg"]


def test_openapi_describes_the_config_and_the_enums(client):
    doc = client.get("/openapi.json").json()
    comps = doc["components"]["schemas"]
    create = comps["TrainJobCreate"]["properties"]
    assert create["config"]["$ref"] == "#/components/schemas/TrainConfig"
    assert "lr" in comps["ModelConfig"]["properties"]
    assert comps["SampleJobCreate"]["properties"]["sampler"]["default"] == "dpmpp2m"
    assert set(comps["JobStatus"]["enum"]) == {"queued", "running", "succeeded", "failed", "cancelled"}
    assert comps["HTTPValidationError"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert comps["WorkerOut"]["properties"]["current_job_id"]
    listed = doc["paths"]["/api/jobs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["type"] == "array"


def test_dataset_must_exist_be_ready_and_match_is_3d(client, make_dataset, ds3d):
    r = train(client, 999)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "dataset_id"
    pending = make_dataset({"a.nii.gz": nifti_bytes()}, commit=False)
    r = train(client, pending)
    assert r.status_code == 422 and "commit" in r.json()["detail"][0]["msg"]
    r = train(client, ds3d, CFG_2D)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "config.is_3d"
    ds2d = make_dataset({"a.png": png_bytes()})
    assert train(client, ds2d, CFG_2D).status_code == 201
    r = train(client, ds2d, CFG_3D)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "config.is_3d"


def test_request_shape_errors_use_the_same_format(client):
    r = client.post("/api/jobs", json={"kind": "train", "config": {}})
    assert r.status_code == 422
    assert {"loc": "dataset_id", "msg": "Field required"} in r.json()["detail"]
    r = client.post("/api/jobs", json={"kind": "paint"})
    assert r.status_code == 422


def test_sample_job_needs_a_train_job_with_weights(client, app, redis_conn, ds3d):
    src = train(client, ds3d).json()["id"]
    body = {"kind": "sample", "source_job_id": src, "num_samples": 2, "sampler": "ddim", "steps": 10, "seed": 3}
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "source_job_id"
    assert client.post("/api/jobs", json={**body, "source_job_id": 999}).status_code == 422
    with app.state.session_factory() as s:
        assert leases.claim_job(s, src, "w")
        assert jobstate.finish_job(s, src, "w", "succeeded")
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "sample" and job["source_job_id"] == src
    assert job["config"] == {"num_samples": 2, "sampler": "ddim", "steps": 10, "seed": 3}
    assert {"task": "ddpm.sample", "args": [job["id"]], "kwargs": {}} in queued_tasks(redis_conn, "cpu")
    r = client.post("/api/jobs", json={**body, "source_job_id": job["id"]})
    assert r.status_code == 422 and "train job" in r.json()["detail"][0]["msg"]
    r = client.post("/api/jobs", json={**body, "sampler": "ddpm", "steps": 5000})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "steps"
    for sampler in Sampler:  # no sampler takes more steps than the model has timesteps (1000 here)
        r = client.post("/api/jobs", json={**body, "sampler": sampler, "steps": 1001})
        assert r.status_code == 422, (sampler, r.text)
        [item] = r.json()["detail"]
        assert item["loc"] == "steps" and "at most 1000" in item["msg"] and "n_timestep" in item["msg"]
        assert client.post("/api/jobs", json={**body, "sampler": sampler, "steps": 1000}).status_code == 201
    defaults = client.post("/api/jobs", json={"kind": "sample", "source_job_id": src}).json()
    assert defaults["config"]["sampler"] == "dpmpp2m"  # DEFAULT_SAMPLER, as in the CLI and the UI


def test_list_filters_and_detail(client, app, ds3d):
    a, b, c = (train(client, ds3d).json()["id"] for _ in range(3))
    client.post(f"/api/jobs/{b}/cancel")
    assert [j["id"] for j in client.get("/api/jobs").json()] == [c, b, a]
    assert [j["id"] for j in client.get("/api/jobs?status=cancelled").json()] == [b]
    assert [j["id"] for j in client.get("/api/jobs?status=queued&kind=train").json()] == [c, a]
    assert client.get("/api/jobs?kind=sample").json() == []
    r = client.get("/api/jobs?status=bogus")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "query.status"
    assert client.get(f"/api/jobs/{a}").json()["id"] == a
    assert client.get("/api/jobs/999").status_code == 404


def test_cancel_resume_and_illegal_transitions(client, app, redis_conn, ds3d):
    jid = train(client, ds3d).json()["id"]
    redis_conn.delete("cpu")
    r = client.post(f"/api/jobs/{jid}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{jid}/cancel").status_code == 409
    r = client.post(f"/api/jobs/{jid}/resume")
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert queued_tasks(redis_conn, "cpu") == [{"task": "ddpm.train", "args": [jid], "kwargs": {}}]
    assert client.post(f"/api/jobs/{jid}/resume").status_code == 409  # queued: nothing to resume
    with app.state.session_factory() as s:
        assert leases.claim_job(s, jid, "w1")
    r = client.post(f"/api/jobs/{jid}/cancel")  # running: a request the worker honours
    assert r.status_code == 202 and r.json()["status"] == "running" and r.json()["cancel_requested"]
    assert client.delete(f"/api/jobs/{jid}").status_code == 409
    with app.state.session_factory() as s:
        assert leases.renew_lease(s, jid, "w1").cancel_requested
        assert jobstate.finish_job(s, jid, "w1", "cancelled")
    assert client.get(f"/api/jobs/{jid}").json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{jid}/resume").json()["cancel_requested"] is False
    assert client.post("/api/jobs/999/cancel").status_code == 404
    assert client.post("/api/jobs/999/resume").status_code == 404


def test_succeeded_job_cannot_be_cancelled_or_resumed(client, app, ds3d):
    jid = train(client, ds3d).json()["id"]
    with app.state.session_factory() as s:
        leases.claim_job(s, jid, "w")
        jobstate.finish_job(s, jid, "w", "succeeded")
    for action in ("cancel", "resume"):
        r = client.post(f"/api/jobs/{jid}/{action}")
        assert r.status_code == 409 and "succeeded" in r.json()["detail"]


def test_metrics_samples_and_files(client, app, settings, ds3d):
    jid = train(client, ds3d).json()["id"]
    storage = app.state.storage
    sdir = storage.samples_dir(jid)
    sdir.mkdir(parents=True)
    (sdir / "s0.nii.gz").write_bytes(nifti_bytes())
    (sdir / "s0.png").write_bytes(png_bytes())
    with app.state.session_factory() as s:
        leases.claim_job(s, jid, "w")
        reporting.report_progress(s, jid, 10, 20, it_s=5.0, eta_s=2.0)
        reporting.add_metrics(s, jid, 5, {"train_loss": 0.5, "lr": 1e-4})
        reporting.add_metrics(s, jid, 10, {"train_loss": 0.25, "lr": 1e-4, "grad_norm": 0.9, "val_loss_t0_250": 0.1})
        smp = reporting.add_sample(s, storage, jid, 0, [8, 9, 10], sdir / "s0.nii.gz", sdir / "s0.png", step=10)
        smp2d = reporting.add_sample(s, storage, jid, 1, [16, 16], None, "runs/%d/samples/s0.png" % jid, step=10)
    job = client.get(f"/api/jobs/{jid}").json()
    assert job["progress"] == {"step": 10, "total": 20, "fraction": 0.5, "eta_s": 2.0, "it_s": 5.0, "loss": None}
    assert job["last_metrics"] == {"step": 10, "train_loss": 0.25, "lr": 1e-4, "grad_norm": 0.9, "val_loss_t0_250": 0.1}
    assert client.get(f"/api/jobs/{jid}/metrics").json() == [
        {"step": 5, "train_loss": 0.5, "lr": 1e-4},
        {"step": 10, "train_loss": 0.25, "lr": 1e-4, "grad_norm": 0.9, "val_loss_t0_250": 0.1}]
    assert len(client.get(f"/api/jobs/{jid}/metrics?since_step=5").json()) == 1
    samples = client.get(f"/api/jobs/{jid}/samples").json()
    assert [x["id"] for x in samples] == [smp.id, smp2d.id]
    assert samples[0]["volume_url"] == f"/api/samples/{smp.id}/volume.nii.gz"
    assert samples[1]["volume_url"] is None and samples[1]["preview_url"].endswith("preview.png")
    vol = client.get(samples[0]["volume_url"], headers={"Accept-Encoding": "gzip"})
    assert vol.status_code == 200 and vol.content == nifti_bytes() and "content-encoding" not in vol.headers
    assert ".nii.gz" in vol.headers["content-disposition"]
    prev = client.get(samples[1]["preview_url"])
    assert prev.status_code == 200 and prev.headers["content-type"] == "image/png"
    r = client.get(f"/api/samples/{smp2d.id}/volume.nii.gz")
    assert r.status_code == 404 and "2D" in r.json()["detail"]
    assert client.get("/api/samples/999/preview.png").status_code == 404
    for route in ("metrics", "samples"):
        assert client.get(f"/api/jobs/999/{route}").status_code == 404


def test_checkpoint_and_log_downloads(client, app, ds3d):
    jid = train(client, ds3d).json()["id"]
    r = client.get(f"/api/jobs/{jid}/checkpoint")
    assert r.status_code == 404 and "no exported weights" in r.json()["detail"]
    assert client.get(f"/api/jobs/{jid}/log").status_code == 404
    storage = app.state.storage
    storage.export_path(jid).parent.mkdir(parents=True)
    storage.export_path(jid).write_bytes(b"safetensors-bytes")
    storage.job_log_path(jid).write_text("step 1 loss 0.5\n")
    r = client.get(f"/api/jobs/{jid}/checkpoint", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.content == b"safetensors-bytes" and "content-encoding" not in r.headers
    assert ".safetensors" in r.headers["content-disposition"]
    r = client.get(f"/api/jobs/{jid}/log")
    assert r.status_code == 200 and r.text == "step 1 loss 0.5\n" and r.headers["content-type"].startswith("text/plain")
    assert client.get(f"/api/jobs/{jid}/log?tail=7").text == "ss 0.5\n"
    assert client.get("/api/jobs/999/checkpoint").status_code == 404


def test_delete_finished_job_removes_rows_and_files(client, app, ds3d):
    jid = train(client, ds3d).json()["id"]
    run = app.state.storage.run_dir(jid)
    with app.state.session_factory() as s:
        leases.claim_job(s, jid, "w")
        reporting.add_metrics(s, jid, 1, {"train_loss": 1.0})
        jobstate.finish_job(s, jid, "w", "failed", "boom")
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt.pt").write_bytes(b"x")
    assert client.delete(f"/api/jobs/{jid}").status_code == 204
    assert not run.exists()
    assert client.get(f"/api/jobs/{jid}").status_code == 404
    assert client.delete(f"/api/jobs/{jid}").status_code == 404


def test_queued_job_cannot_be_deleted(client, ds3d):
    jid = train(client, ds3d).json()["id"]
    r = client.delete(f"/api/jobs/{jid}")
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"]


def test_broker_down_gives_503_and_a_failed_job(app, settings, make_dataset, client):
    ds = make_dataset({"a.nii.gz": nifti_bytes()})
    app.state.settings = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    r = train(client, ds)
    assert r.status_code == 503 and "broker" in r.json()["detail"]
    job = client.get("/api/jobs").json()[0]
    assert job["status"] == "failed" and "broker" in job["error"]


def test_list_matches_detail(client, app, ds3d):
    """The list route builds its JSON by hand for speed; it must equal the detail route's."""
    a = train(client, ds3d).json()["id"]
    b = train(client, ds3d).json()["id"]
    with app.state.session_factory() as s:
        leases.claim_job(s, a, "w")
        reporting.report_progress(s, a, 3, 20, it_s=1.5, eta_s=11.0)
        reporting.add_metrics(s, a, 3, {"train_loss": 0.3})
        jobstate.request_cancel(s, a)
    listed = {j["id"]: j for j in client.get("/api/jobs").json()}
    for jid in (a, b):
        assert listed[jid] == client.get(f"/api/jobs/{jid}").json()


def test_api_requeues_jobs_of_a_silent_worker(settings, redis_conn, make_dataset):
    """Even with no worker left to notice, the API puts a dead worker's job back in the queue."""
    import time

    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from backend.app import create_app

    app = create_app(settings.model_copy(update={"worker_heartbeat_timeout_s": 1.0}))
    with TestClient(app) as c:
        ds = c.post("/api/datasets", json={"name": "d"}).json()["id"]
        c.put(f"/api/datasets/{ds}/files/a.nii.gz", content=nifti_bytes())
        c.post(f"/api/datasets/{ds}/commit")
        jid = train(c, ds).json()["id"]
        redis_conn.delete("cpu")
        with app.state.session_factory() as s:
            assert leases.claim_job(s, jid, "doomed")
            s.execute(text("UPDATE jobs SET lease_renewed_at = '2000-01-01 00:00:00'"))
            s.commit()
        deadline = time.monotonic() + 10
        while c.get(f"/api/jobs/{jid}").json()["status"] != "queued" and time.monotonic() < deadline:
            time.sleep(0.2)
        job = c.get(f"/api/jobs/{jid}").json()
    assert job["status"] == "queued" and job["worker"] is None
    assert queued_tasks(redis_conn, "cpu") == [{"task": "ddpm.train", "args": [jid], "kwargs": {}}]


def test_api_start_resends_tasks_of_queued_jobs_the_broker_forgot(settings, redis_conn, ds3d, client):
    """`make run`'s Redis keeps no data: after a restart only the job table knows what is queued."""
    from fastapi.testclient import TestClient

    from backend.app import create_app

    job = train(client, ds3d, device="cpu").json()
    redis_conn.flushdb()  # the broker restarted and lost its messages
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while not queued_tasks(redis_conn, "cpu") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert queued_tasks(redis_conn, "cpu") == [{"task": "ddpm.train", "args": [job["id"]], "kwargs": {}}]
