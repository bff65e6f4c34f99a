"""A read-only, full or failing data volume, with real faults: DATA_DIR on a small tmpfs that is
remounted read-only or filled up, and an immutable (chattr +i) folder that refuses a rename even to
root. Uploads, commits, job creation and deletes answer 503/507 naming the cause, leave nothing
half-written, and the same requests succeed once the volume is healthy again. Deletes are ordered
(mark, files, row), so a retry or the start-up sweep finishes one that failed or crashed part-way.
(The tests run as root: mount and chattr need it.)"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from upload_files import nifti_bytes

from backend.app import create_app
from backend.settings import Settings

CFG_3D = {"is_3d": True, "model": {"iterations": 2, "unet": {"dim": 8, "channel_mults": [1, 2],
                                                             "num_head_channels": 8}},
          "dataset": {"name": "volume3d", "image_size": 8, "batch_size": 1}}


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of our own, unmounted afterwards."""
    vol = tmp_path / "vol"
    vol.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(vol))
    try:
        yield vol
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False)


def make_client(data_dir: Path, redis_url: str) -> TestClient:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, frontend_dir=data_dir / "none",
                        max_file_bytes=8 << 20)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def ready_dataset(c: TestClient) -> int:
    ds = c.post("/api/datasets", json={"name": "ds"}).json()["id"]
    assert c.put(f"/api/datasets/{ds}/files/a.nii.gz", content=nifti_bytes()).status_code == 201
    assert c.post(f"/api/datasets/{ds}/commit").status_code == 200
    return ds


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_read_only_volume_is_503_naming_it_and_changes_nothing(volume: Path, redis_url: str) -> None:
    with make_client(volume / "data", redis_url) as c:
        done = ready_dataset(c)
        open_ds = c.post("/api/datasets", json={"name": "open"}).json()["id"]
        assert c.put(f"/api/datasets/{open_ds}/files/a.nii.gz", content=nifti_bytes()).status_code == 201
        before = files_under(volume / "data" / "datasets")
        c.app.state.engine.dispose()  # a busy mount cannot turn read-only: close the database first
        sh("mount", "-o", "remount,ro", str(volume))
        try:
            answers = {
                "upload": c.put(f"/api/datasets/{open_ds}/files/b.nii.gz", content=nifti_bytes()),
                "commit": c.post(f"/api/datasets/{open_ds}/commit"),
                "job": c.post("/api/jobs", json={"kind": "train", "dataset_id": done, "config": CFG_3D}),
                "delete": c.delete(f"/api/datasets/{done}"),
                "new dataset": c.post("/api/datasets", json={"name": "x"}),
            }
            for what, r in answers.items():
                assert r.status_code == 503, (what, r.status_code, r.text)
                assert "read-only" in r.json()["detail"], (what, r.text)
            assert "b.nii.gz" in answers["upload"].json()["detail"]
            assert files_under(volume / "data" / "datasets") == before
        finally:
            sh("mount", "-o", "remount,rw", str(volume))
        # the same requests, now on a healthy volume
        assert c.put(f"/api/datasets/{open_ds}/files/b.nii.gz", content=nifti_bytes()).status_code == 201
        assert c.post(f"/api/datasets/{open_ds}/commit").status_code == 200
        assert c.get(f"/api/datasets/{done}").json()["status"] == "ready"
        assert c.delete(f"/api/datasets/{done}").status_code == 204
        assert not (volume / "data" / "datasets" / str(done)).exists()
        assert not list((volume / "data" / "tmp").iterdir())


def test_full_volume_is_507_and_leaves_no_temp_file(volume: Path, redis_url: str) -> None:
    with make_client(volume / "data", redis_url) as c:
        ds = c.post("/api/datasets", json={"name": "full"}).json()["id"]
        filler = volume / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)  # until ENOSPC
        big = nifti_bytes((64, 64, 64), gz=False)  # 1 MiB
        r = c.put(f"/api/datasets/{ds}/files/big.nii", content=big)
        assert r.status_code == 507, r.text
        assert "no space left" in r.json()["detail"] and "big.nii" in r.json()["detail"]
        assert not list((volume / "data" / "tmp").glob("*.part"))
        filler.unlink()
        assert c.put(f"/api/datasets/{ds}/files/big.nii", content=big).status_code == 201


@pytest.fixture
def immutable(tmp_path: Path):
    """chattr +i a folder (root cannot create, rename or delete in it either); undone afterwards."""
    held: list[Path] = []

    def freeze(path: Path) -> None:
        sh("chattr", "+i", str(path))
        held.append(path)

    def thaw(path: Path) -> None:
        sh("chattr", "-i", str(path))
        held.remove(path)

    yield freeze, thaw
    for path in held:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_dataset_delete_that_fails_part_way_is_finished_by_a_retry(tmp_path: Path, redis_url: str,
                                                                    immutable) -> None:
    freeze, thaw = immutable
    data = tmp_path / "data"
    with make_client(data, redis_url) as c:
        ds = ready_dataset(c)
        freeze(data / "datasets")  # the files cannot be moved out: the step after the mark fails
        r = c.delete(f"/api/datasets/{ds}")
        assert r.status_code == 503 and "not permitted" in r.json()["detail"], r.text
        assert (data / "datasets" / str(ds) / "files" / "a.nii.gz").is_file()
        # marked: gone for every route (no upload, commit or job takes it), the files still there
        assert c.get(f"/api/datasets/{ds}").status_code == 404
        assert ds not in [d["id"] for d in c.get("/api/datasets").json()]
        r = c.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": CFG_3D})
        assert r.status_code == 422, r.text
        thaw(data / "datasets")
        assert c.delete(f"/api/datasets/{ds}").status_code == 204
        assert not (data / "datasets" / str(ds)).exists()
        assert c.delete(f"/api/datasets/{ds}").status_code == 404


def test_job_delete_that_fails_keeps_the_row_and_a_retry_finishes(tmp_path: Path, redis_url: str,
                                                                   immutable) -> None:
    from backend.models import Job

    freeze, thaw = immutable
    data = tmp_path / "data"
    with make_client(data, redis_url) as c:
        with c.app.state.session_factory() as s:
            job = Job(kind="sample", status="succeeded", config={}, total=1)
            s.add(job)
            s.commit()
            job_id = job.id
        run = data / "runs" / str(job_id)
        (run / "samples").mkdir(parents=True)
        (run / "job.log").write_text("done\n")
        freeze(data / "runs")
        r = c.delete(f"/api/jobs/{job_id}")
        assert r.status_code == 503, r.text
        assert c.get(f"/api/jobs/{job_id}").status_code == 200 and (run / "job.log").is_file()
        thaw(data / "runs")
        assert c.delete(f"/api/jobs/{job_id}").status_code == 204
        assert c.get(f"/api/jobs/{job_id}").status_code == 404 and not run.exists()


def test_the_start_up_sweep_finishes_deletes_a_crash_interrupted(tmp_path: Path, redis_url: str) -> None:
    """The states a crash between the steps leaves: a dataset marked deleting (files still in
    place), a job whose run folder was moved to the trash but whose row stayed. The next start
    finishes both."""
    from sqlalchemy import update

    from backend.models import DELETING, Dataset, Job
    from backend.storage import Storage

    data = tmp_path / "data"
    with make_client(data, redis_url) as c:
        ds = ready_dataset(c)
        keep = ready_dataset(c)
        with c.app.state.session_factory() as s:
            s.execute(update(Dataset).where(Dataset.id == ds).values(status=DELETING))
            job = Job(kind="sample", status="failed", config={}, total=1)
            s.add(job)
            s.commit()
            job_id = job.id
        (data / "runs" / str(job_id)).mkdir(parents=True)
        (data / "runs" / str(job_id) / "job.log").write_text("x")
        Storage(data).move_to_trash(data / "runs" / str(job_id), f"job-{job_id}")
    with make_client(data, redis_url) as c:  # a restart: the sweep runs at start
        assert c.get(f"/api/jobs/{job_id}").status_code == 404
        assert c.get(f"/api/datasets/{keep}").status_code == 200
        with c.app.state.session_factory() as s:
            assert s.get(Dataset, ds) is None
    assert not (data / "datasets" / str(ds)).exists() and (data / "datasets" / str(keep)).exists()
    assert not list((data / "tmp").iterdir())
