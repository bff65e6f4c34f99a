"""POST /api/jobs of kind finetune / study: the labelled dataset, the source train job and the
config are checked at submit (422 naming the field and the file); the stored job carries the
server's paths and the source's choices; the result routes answer 404 until a worker wrote them."""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # the engine tests' tiny labelled phantoms

from finetune_helpers import AFFINE, phantom  # noqa: E402

from backend import jobs as jobstate  # noqa: E402
from backend.models import Job  # noqa: E402
from ddpm.config import FinetuneConfig  # noqa: E402

UNET = {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "attn_res": [], "num_head_channels": 8}
TRAIN_CFG = {"gpu": -1, "is_3d": True, "model": {"unet": UNET, "iterations": 4},
             "dataset": {"name": "volume3d", "image_size": 16}}
FT_CFG = {"gpu": -1, "task": {"num_classes": 3}, "model": {"iterations": 4}}


def nii(array: np.ndarray) -> bytes:
    return gzip.compress(nib.Nifti1Image(array, AFFINE).to_bytes(), compresslevel=1)


def labelled_files(n: int = 4, root: str = "set") -> dict[str, bytes]:
    files = {}
    for i in range(n):
        image, label = phantom(i)
        files[f"{root}/images/case{i}.nii.gz"] = nii(image)
        files[f"{root}/labels/case{i}.nii.gz"] = nii(label)
    return files


@pytest.fixture
def finished_train_job(client, app, make_dataset) -> int:
    """A train job marked succeeded (no worker runs here): a source for fine-tuning."""
    ds = make_dataset({f"vols/v{i}.nii.gz": nii(phantom(i)[0]) for i in range(2)}, name="unlabelled")
    r = client.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": TRAIN_CFG})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    with app.state.session_factory() as s:
        assert jobstate.transition(s, jid, jobstate.JobStatus.running, {"worker": "w"})
        s.commit()
        assert jobstate.finish_job(s, jid, "w", "succeeded")
    return jid


def post(client, **body):
    return client.post("/api/jobs", json={"device": "cpu", **body})


def test_finetune_job_takes_the_source_and_the_labelled_folder(client, app, make_dataset, finished_train_job):
    ds = make_dataset(labelled_files(), name="labelled")
    r = post(client, kind="finetune", source_job_id=finished_train_job, dataset_id=ds, config=FT_CFG)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "finetune" and job["status"] == "queued" and job["eval_dataset_id"] is None
    cfg = job["config"]
    # the pretrained run's choices are merged in; the server's paths filled in once
    assert cfg["is_3d"] is True and cfg["dataset"]["image_size"] == 16 and cfg["model"]["unet"]["dim"] == 8
    assert cfg["pretrained"].endswith(f"/runs/{finished_train_job}")
    assert cfg["dataset"]["path"].endswith(f"/datasets/{ds}/files/set")  # the folder holding images/ + labels/
    assert job["progress"]["total"] == 4
    listed = client.get("/api/jobs", params={"kind": "finetune"}).json()
    assert listed == [client.get(f"/api/jobs/{job['id']}").json()]
    # nothing to show before a worker ran it
    for path in ("evaluation", "predictions"):
        r = client.get(f"/api/jobs/{job['id']}/{path}")
        assert r.status_code == 404 and "no " in r.json()["detail"]
    assert client.get(f"/api/jobs/{job['id']}/study").status_code == 404


def test_scratch_finetune_and_study_jobs(client, make_dataset, finished_train_job):
    ds = make_dataset(labelled_files(), name="labelled")
    scratch = {**FT_CFG, "is_3d": True, "model": {"unet": UNET, "iterations": 2},
               "dataset": {"image_size": 16}}
    r = post(client, kind="finetune", dataset_id=ds, config=scratch)
    assert r.status_code == 201, r.text
    assert r.json()["source_job_id"] is None and r.json()["config"]["pretrained"] is None
    r = post(client, kind="study", source_job_id=finished_train_job, dataset_id=ds, config=FT_CFG,
             labels=[2, 1, 2], seeds=2)
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["kind"] == "study" and study["labels"] == [1, 2] and study["seeds"] == 2
    assert study["progress"]["total"] == 2 * 2 * 2 * 4  # arms x budgets x seeds x iterations
    assert client.get(f"/api/jobs/{study['id']}/evaluation").status_code == 404  # a fine-tune job's route


def _detail(r) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {item["loc"]: item["msg"] for item in r.json()["detail"]}


def test_labelled_dataset_errors_at_submit(client, make_dataset, finished_train_job):
    src = finished_train_job
    unlabelled = make_dataset({"vols/v0.nii.gz": nii(phantom(0)[0])}, name="plain")
    msg = _detail(post(client, kind="finetune", source_job_id=src, dataset_id=unlabelled, config=FT_CFG))["dataset_id"]
    assert "not labelled" in msg and "images/ and labels/" in msg
    uploading = make_dataset(labelled_files(2), name="uploading", commit=False)
    assert "commit it first" in _detail(post(client, kind="finetune", source_job_id=src, dataset_id=uploading,
                                             config=FT_CFG))["dataset_id"]
    assert "does not exist" in _detail(post(client, kind="finetune", dataset_id=999, config=FT_CFG,
                                            source_job_id=src))["dataset_id"]
    ok = make_dataset(labelled_files(), name="ok")
    assert "other cases" in _detail(post(client, kind="finetune", source_job_id=src, dataset_id=ok,
                                         eval_dataset_id=ok, config=FT_CFG))["eval_dataset_id"]
    two_d = make_dataset(labelled_files(), name="ok2")
    is_2d = _detail(post(client, kind="finetune", dataset_id=two_d, config={**FT_CFG, "is_3d": False,
                                                                          "dataset": {"image_size": 16}}))
    assert "3D data" in is_2d["dataset_id"]


def test_source_and_config_errors_at_submit(client, make_dataset, finished_train_job):
    ds = make_dataset(labelled_files(), name="labelled")
    # a key that would change the pretrained U-Net: named, with the source's value
    msg = _detail(post(client, kind="finetune", source_job_id=finished_train_job, dataset_id=ds,
                       config={**FT_CFG, "is_3d": False}))["config.is_3d"]
    assert "pretrained run's True" in msg
    # a time input beyond the source's diffusion, checked against that run's schedule
    late = {**FT_CFG, "model": {**FT_CFG.get("model", {}), "timestep": 100000}}
    msg = _detail(post(client, kind="finetune", source_job_id=finished_train_job, dataset_id=ds,
                       config=late))["config.model.timestep"]
    assert "outside the pretrained run's diffusion" in msg
    assert "server" in _detail(post(client, kind="finetune", source_job_id=finished_train_job, dataset_id=ds,
                                    config={**FT_CFG, "pretrained": "/etc"}))["config.pretrained"]
    assert "does not exist" in _detail(post(client, kind="finetune", source_job_id=9999, dataset_id=ds,
                                            config=FT_CFG))["source_job_id"]
    # the config is described by the fine-tune schema, for a study too
    bad = _detail(post(client, kind="study", source_job_id=finished_train_job, dataset_id=ds,
                       config={**FT_CFG, "task": {"num_classes": 1}}, labels=[0]))
    assert "config.task.num_classes" in bad and "labels.0" in bad
    assert "source_job_id" in _detail(post(client, kind="study", dataset_id=ds, config=FT_CFG))
    too_many = _detail(post(client, kind="study", source_job_id=finished_train_job, dataset_id=ds, config=FT_CFG,
                            labels=[1, 4]))["labels"]
    assert too_many.startswith("4 labelled cases: dataset") and "has 4" in too_many


def test_queued_source_has_no_weights(client, app, make_dataset):
    ds = make_dataset({"vols/v0.nii.gz": nii(phantom(0)[0])}, name="plain")
    src = client.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": TRAIN_CFG}).json()["id"]
    lab = make_dataset(labelled_files(), name="labelled")
    assert "no checkpoint" in _detail(post(client, kind="finetune", source_job_id=src, dataset_id=lab,
                                           config=FT_CFG))["source_job_id"]


def test_finetune_config_of_a_train_job_starts_from_its_model(client, finished_train_job):
    cfg = client.get(f"/api/jobs/{finished_train_job}/finetune-config").json()
    assert cfg["is_3d"] is True and cfg["dataset"]["image_size"] == 16 and cfg["model"]["unet"] == {
        **cfg["model"]["unet"], **UNET}
    assert cfg["pretrained"] is None and cfg["model"]["iterations"] == FinetuneConfig().model.iterations


def test_a_source_whose_config_no_longer_validates_is_named(client, app, make_dataset, finished_train_job):
    with app.state.session_factory() as s:  # stored under an older schema
        job = s.get(Job, finished_train_job)
        job.config = {**job.config, "model": {**job.config["model"], "retired_key": 1}}
        s.commit()
    r = client.get(f"/api/jobs/{finished_train_job}/finetune-config")
    assert r.status_code == 409 and "retired_key" in r.json()["detail"]
    ds = make_dataset(labelled_files(), name="labelled")
    msg = _detail(post(client, kind="finetune", source_job_id=finished_train_job, dataset_id=ds,
                       config=FT_CFG))["source_job_id"]
    assert "not valid under the current schema" in msg and "model.retired_key" in msg


def test_a_finetune_job_asks_for_gpus_as_a_train_job_does_and_a_study_takes_one(client, app, redis_conn,
                                                                                  make_dataset, finished_train_job):
    from test_api_gpus import SPLIT_RULE, beat
    from test_api_jobs import queued_tasks

    from backend.worker_registry import remove_worker

    ds = make_dataset(labelled_files(), name="labelled")
    redis_conn.delete("cpu")  # the source train job's task

    def finetune(batch: int, gpus: int, kind: str = "finetune", **extra):
        cfg = {**FT_CFG, "dataset": {"batch_size": batch}}
        return post(client, kind=kind, source_job_id=finished_train_job, dataset_id=ds, config=cfg, gpus=gpus,
                    **extra)

    assert "gpus 2 but no live worker serves queue cpu" in _detail(finetune(2, 2))["gpus"]  # nobody holds 2
    beat(app, "cpu-pair", ["cpu"], "cpu", 2)
    assert _detail(finetune(2, 3)) == {"gpus": "gpus 3 but the largest live worker on queue cpu has 2"}
    assert _detail(finetune(3, 2)) == {"config.dataset.batch_size":
                                       f"3 cannot be split evenly across 2 processes; {SPLIT_RULE}"}
    assert queued_tasks(redis_conn, "cpu") == []
    r = finetune(2, 2)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["gpus"] == 2 and client.get(f"/api/jobs/{job['id']}").json()["gpus"] == 2
    assert len(queued_tasks(redis_conn, "cpu")) == 1
    # a study's runs go one after another in one process: refused with the reason, not queued
    study = _detail(finetune(2, 2, kind="study", labels=[1], seeds=1))
    assert study == {"gpus": "gpus 2 but a study runs as one process; leave gpus at 1 "
                             "(a fine-tune job can run as several)"}
    assert finetune(2, 1, kind="study", labels=[1], seeds=1).status_code == 201

    # resume holds the job to the same check: the worker that held 2 went away
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    redis_conn.delete("cpu")
    with app.state.session_factory() as s:
        remove_worker(s, "cpu-pair")
    r = client.post(f"/api/jobs/{job['id']}/resume")
    assert _detail(r) == {"gpus": "gpus 2 but no live worker serves queue cpu; start a worker that holds 2 "
                                  "(its GPUs, or WORKER_NPROC=2 on a CPU worker)"}
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
    beat(app, "cpu-pair", ["cpu"], "cpu", 2)
    assert client.post(f"/api/jobs/{job['id']}/resume").status_code == 202
