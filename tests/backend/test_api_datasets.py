"""Dataset routes: create, list, detail, commit rules, file bytes, delete."""
from __future__ import annotations

from upload_files import nifti_bytes, npy_bytes, png_bytes

from backend.models import Job


def test_create_list_detail(client):
    r = client.post("/api/datasets", json={"name": "  brains "})
    assert r.status_code == 201
    ds = r.json()
    assert ds["name"] == "brains" and ds["status"] == "uploading" and ds["file_count"] == 0
    client.put(f"/api/datasets/{ds['id']}/files/a.nii.gz", content=nifti_bytes())
    listed = client.get("/api/datasets").json()
    assert [(d["id"], d["file_count"]) for d in listed] == [(ds["id"], 1)]
    detail = client.get(f"/api/datasets/{ds['id']}").json()
    assert detail["files"][0]["path"] == "a.nii.gz"
    assert detail["total_bytes"] == detail["files"][0]["size_bytes"] > 0


def test_create_validation(client):
    assert client.post("/api/datasets", json={}).status_code == 422
    r = client.post("/api/datasets", json={"name": "   "})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "name"
    assert client.post("/api/datasets", json={"name": "x", "extra": 1}).status_code == 422


def test_unknown_dataset_is_404(client):
    for method, url in [("get", "/api/datasets/42"), ("post", "/api/datasets/42/commit"),
                        ("delete", "/api/datasets/42"), ("get", "/api/datasets/42/files/1")]:
        r = getattr(client, method)(url)
        assert r.status_code == 404, (method, url)
        assert "42" in r.json()["detail"]


def test_commit_ready_3d(client, make_dataset):
    ds = make_dataset({"v/a.nii.gz": nifti_bytes(), "v/b.npy": npy_bytes()}, commit=False)
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["kind"] == "3d" and body["channels"] == 1
    assert body["committed_at"] is not None
    assert client.post(f"/api/datasets/{ds}/commit").status_code == 200  # idempotent


def test_commit_empty_dataset_is_422(client):
    ds = client.post("/api/datasets", json={"name": "empty"}).json()["id"]
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == "files" and "no files" in r.json()["detail"][0]["msg"]
    assert client.get(f"/api/datasets/{ds}").json()["status"] == "uploading"


def test_commit_mixed_kinds_is_422_naming_files(client, make_dataset):
    ds = make_dataset({"a.nii.gz": nifti_bytes(), "b.nii.gz": nifti_bytes(), "odd.png": png_bytes()}, commit=False)
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert "files" in locs and "files/odd.png" in locs


def test_commit_inconsistent_channels_is_422(client, make_dataset):
    ds = make_dataset({"a.png": png_bytes(), "b.png": png_bytes(), "c.png": png_bytes(mode="RGB")}, commit=False)
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 422
    assert {"loc": "files/c.png", "msg": "3 channels; most files have 1"} in r.json()["detail"]


def test_file_bytes_with_filename(client, make_dataset):
    data = nifti_bytes()
    ds = make_dataset({"sub/brain.nii.gz": data})
    fid = client.get(f"/api/datasets/{ds}").json()["files"][0]["id"]
    r = client.get(f"/api/datasets/{ds}/files/{fid}", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.content == data
    assert 'filename="brain.nii.gz"' in r.headers["content-disposition"]
    assert "content-encoding" not in r.headers  # volumes never pass through gzip middleware
    assert client.get(f"/api/datasets/{ds}/files/{fid + 100}").status_code == 404


def test_delete_dataset_removes_files_and_rows(client, app, settings, make_dataset):
    ds = make_dataset({"a.nii.gz": nifti_bytes()})
    folder = settings.resolved_data_dir / "datasets" / str(ds)
    assert folder.is_dir()
    assert client.delete(f"/api/datasets/{ds}").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/datasets/{ds}").status_code == 404


def test_delete_dataset_in_use_is_409(client, app, make_dataset):
    ds = make_dataset({"a.nii.gz": nifti_bytes()})
    with app.state.session_factory() as s:
        for status in ("running", "succeeded"):
            s.add(Job(kind="train", status=status, dataset_id=ds, config={}))
        s.commit()
    r = client.delete(f"/api/datasets/{ds}")
    assert r.status_code == 409 and "cancel" in r.json()["detail"]
    with app.state.session_factory() as s:
        s.query(Job).filter(Job.status == "running").update({"status": "failed"})
        s.commit()
    assert client.delete(f"/api/datasets/{ds}").status_code == 204
    with app.state.session_factory() as s:  # finished jobs keep their history, minus the link
        assert {j.dataset_id for j in s.query(Job)} == {None}
