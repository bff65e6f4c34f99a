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


def test_file_of_the_other_kind_is_refused_on_arrival_and_the_rest_commits(client, app, make_dataset):
    """Issue 13 item 6: a 2D file into a 3D dataset is a 422 naming it and why; nothing is kept,
    and the dataset does not get stuck: the 3D files commit."""
    ds = make_dataset({"vol/a.nii.gz": nifti_bytes(), "vol/b.nii.gz": nifti_bytes()}, commit=False)
    r = client.put(f"/api/datasets/{ds}/files/vol/odd.png", content=png_bytes())
    assert r.status_code == 422
    msg = r.json()["detail"]
    assert msg.startswith("vol/odd.png: a 2D file") and "3D files (such as vol/a.nii.gz)" in msg
    assert [f["path"] for f in client.get(f"/api/datasets/{ds}").json()["files"]] == ["vol/a.nii.gz", "vol/b.nii.gz"]
    assert not list((app.state.storage.dataset_files_dir(ds)).rglob("odd.png"))
    assert client.post(f"/api/datasets/{ds}/commit").json()["kind"] == "3d"


def test_mixed_kinds_at_commit_name_each_file_in_one_sentence():
    """Files that raced in together (the arrival check sees neither) are caught at commit; each
    message names the file by its dataset path, as one sentence."""
    from backend.dataset_store import commit_problems
    from backend.models import DatasetFile

    files = [DatasetFile(path=p, kind=k, channels=1) for p, k in
             (("a.nii.gz", "3d"), ("b.nii.gz", "3d"), ("sub/odd.png", "2d"))]
    problems = commit_problems(files)
    assert problems[0]["loc"] == "files" and "mixes 2D and 3D" in problems[0]["msg"]
    assert problems[1] == {"loc": "files/sub/odd.png",
                           "msg": "sub/odd.png is a 2D file in a dataset of 3D files; remove it."}
    assert all(p["msg"].count(". ") == 0 and p["msg"].endswith(".") for p in problems)


def test_commit_inconsistent_channels_is_422(client, make_dataset):
    ds = make_dataset({"a.png": png_bytes(), "b.png": png_bytes(), "c.png": png_bytes(mode="RGB")}, commit=False)
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 422
    assert {"loc": "files/c.png", "msg": "c.png has 3 channels where most files have 1; remove it."} \
        in r.json()["detail"]


def test_delete_one_file_while_uploading(client, app, make_dataset):
    ds = make_dataset({"a.png": png_bytes(), "sub/b.png": png_bytes(), "sub/c.png": png_bytes(mode="RGB")},
                      commit=False)
    files = {f["path"]: f["id"] for f in client.get(f"/api/datasets/{ds}").json()["files"]}
    assert client.post(f"/api/datasets/{ds}/commit").status_code == 422
    assert client.delete(f"/api/datasets/{ds}/files/{files['sub/c.png']}").status_code == 204
    folder = app.state.storage.dataset_files_dir(ds)
    assert not (folder / "sub" / "c.png").exists() and (folder / "sub" / "b.png").is_file()
    assert not list(app.state.storage.tmp_dir.iterdir())  # nothing left aside
    r = client.delete(f"/api/datasets/{ds}/files/{files['sub/c.png']}")
    assert r.status_code == 404 and str(files["sub/c.png"]) in r.json()["detail"]
    assert client.post(f"/api/datasets/{ds}/commit").status_code == 200
    r = client.delete(f"/api/datasets/{ds}/files/{files['a.png']}")  # a committed dataset is fixed
    assert r.status_code == 409 and "before commit" in r.json()["detail"]
    assert client.get(f"/api/datasets/{ds}").json()["file_count"] == 2
    other = make_dataset({"x.png": png_bytes()}, commit=False)
    assert client.delete(f"/api/datasets/{other}/files/{files['a.png']}").status_code == 404


def test_orientation_from_the_affine(client, make_dataset):
    """Issue 13 item 10: the file table's orientation column, computed at upload."""
    import gzip

    import nibabel as nib
    import numpy as np

    def vol(affine) -> bytes:
        return gzip.compress(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), affine).to_bytes())

    ds = make_dataset({"ras.nii.gz": vol(np.eye(4)), "lps.nii.gz": vol(np.diag([-1.0, -1, 1, 1])),
                       "las.nii.gz": vol(np.diag([-1.0, 1, 1, 1])), "x.npy": npy_bytes()}, commit=False)
    got = {f["path"]: f["orientation"] for f in client.get(f"/api/datasets/{ds}").json()["files"]}
    assert got == {"ras.nii.gz": "RAS", "lps.nii.gz": "LPS", "las.nii.gz": "LAS", "x.npy": None}
    ds2 = make_dataset({"a.png": png_bytes()}, commit=False)
    assert client.get(f"/api/datasets/{ds2}").json()["files"][0]["orientation"] is None


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
