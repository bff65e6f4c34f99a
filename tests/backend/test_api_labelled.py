"""Labelled datasets through REST (issue 14): pairs validated as each file arrives, refusals
naming the file and reason with nothing kept, pairs / classes / voxels per class in the API."""
from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image


def nii(data: np.ndarray, affine=None) -> bytes:
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def image(shape=(6, 7, 8)) -> bytes:
    return nii(np.random.default_rng(0).random(shape).astype(np.float32))


def label(shape=(6, 7, 8), classes=(0, 1, 2), dtype=np.uint8, affine=None) -> bytes:
    data = np.zeros(shape, dtype)
    for i, c in enumerate(classes[1:], start=1):
        data[i] = c  # slab i holds class c: voxels per class are known
    return nii(data, affine)


def png(arr: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8), mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def ds(client) -> int:
    return client.post("/api/datasets", json={"name": "seg"}).json()["id"]


def put(client, ds: int, path: str, data: bytes):
    return client.put(f"/api/datasets/{ds}/files/{path}", content=data)


def paths(client, ds: int) -> list[str]:
    return [f["path"] for f in client.get(f"/api/datasets/{ds}").json()["files"]]


def test_pairs_classes_and_voxels_per_class(client, ds):
    for case in ("a", "b"):
        assert put(client, ds, f"brains/images/{case}.nii.gz", image()).status_code == 201
    assert put(client, ds, "brains/labels/a.nii.gz", label()).status_code == 201
    assert put(client, ds, "brains/labels/b.nii.gz", label(classes=(0, 3))).status_code == 201
    body = client.post(f"/api/datasets/{ds}/commit").json()
    assert body["status"] == "ready" and body["labelled"] is True and body["kind"] == "3d"
    lab = body["labelled_data"]
    assert lab["root"] == "brains" and lab["classes"] == [0, 1, 2, 3]
    slab = 7 * 8
    assert [(p["case"], p["image"]["path"], p["label"]["path"], p["voxels_per_class"]) for p in lab["pairs"]] == [
        ("a", "brains/images/a.nii.gz", "brains/labels/a.nii.gz", {"0": 4 * slab, "1": slab, "2": slab}),
        ("b", "brains/images/b.nii.gz", "brains/labels/b.nii.gz", {"0": 5 * slab, "3": slab})]
    assert lab["voxels_per_class"] == {"0": 9 * slab, "1": slab, "2": slab, "3": slab}
    roles = {f["path"]: f["role"] for f in body["files"]}
    assert roles["brains/images/a.nii.gz"] == "image" and roles["brains/labels/b.nii.gz"] == "label"
    assert [d["labelled"] for d in client.get("/api/datasets").json()] == [True]


def test_nnunet_layout_pairs_by_case(client, ds):
    assert put(client, ds, "imagesTr/case1_0000.nii.gz", image()).status_code == 201
    assert put(client, ds, "labelsTr/case1.nii.gz", label()).status_code == 201
    r = put(client, ds, "imagesTr/case2.nii.gz", image())  # no _0000: cannot be paired
    assert r.status_code == 422 and r.json()["detail"].startswith("imagesTr/case2.nii.gz: an nnU-Net image")
    body = client.post(f"/api/datasets/{ds}/commit").json()
    assert body["labelled_data"]["root"] == "" and body["labelled_data"]["pairs"][0]["case"] == "case1"


@pytest.mark.parametrize("data, reason", [
    (nii(np.full((6, 7, 8), 0.5, np.float32)), "non-integer values (e.g. 0.5)"),
    (nii(np.full((6, 7, 8), -1, np.int16)), "negative values (-1)"),
    (nii(np.full((6, 7, 8), np.nan, np.float32)), "NaN or Inf"),
    (nii(np.zeros((6, 7, 8, 2), np.uint8)), "one channel; this file has 2"),
])
def test_label_that_is_not_a_class_map_is_refused_and_not_kept(client, app, ds, data, reason):
    r = put(client, ds, "labels/a.nii.gz", data)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("labels/a.nii.gz: ") and reason in r.json()["detail"]
    assert paths(client, ds) == []
    assert not list(app.state.storage.dataset_files_dir(ds).rglob("*.nii.gz"))


def test_float_label_with_whole_values_is_accepted(client, ds):
    assert put(client, ds, "labels/a.nii.gz", nii(np.ones((6, 7, 8), np.float32))).status_code == 201


@pytest.mark.parametrize("first", ["image", "label"])
def test_label_on_another_grid_is_refused_whichever_arrives_second(client, app, ds, first):
    files = {"image": ("images/a.nii.gz", image()), "label": ("labels/a.nii.gz", label(shape=(6, 7, 9)))}
    second = "label" if first == "image" else "image"
    assert put(client, ds, *files[first]).status_code == 201
    r = put(client, ds, *files[second])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith(files[second][0] + ": ") and "(6, 7, 9) differs from its image's (6, 7, 8)" in detail
    assert paths(client, ds) == [files[first][0]]


def test_label_with_another_affine_is_refused(client, ds):
    assert put(client, ds, "images/a.nii.gz", image()).status_code == 201
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    r = put(client, ds, "labels/a.nii.gz", label(affine=shifted))
    assert r.status_code == 422 and "affine differs from its image's (images/a.nii.gz) by up to 0.5 mm" \
        in r.json()["detail"]
    # within the tolerance (rounding in converters) is the same grid
    shifted[0, 3] = 1e-5
    assert put(client, ds, "labels/a.nii.gz", label(affine=shifted)).status_code == 201


def test_unpaired_files_block_commit_naming_each(client, ds):
    assert put(client, ds, "images/a.nii.gz", image()).status_code == 201
    assert put(client, ds, "images/b.nii.gz", image()).status_code == 201
    assert put(client, ds, "labels/a.nii.gz", label()).status_code == 201
    assert put(client, ds, "labels/c.nii.gz", label()).status_code == 201
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": "files/images/b.nii.gz",
         "msg": "images/b.nii.gz has no label (expected one named b in labels/); upload it or remove this file."},
        {"loc": "files/labels/c.nii.gz",
         "msg": "labels/c.nii.gz has no image (expected one named c in images/); upload it or remove this file."}]
    for f in client.get(f"/api/datasets/{ds}").json()["files"]:
        if f["path"] in ("images/b.nii.gz", "labels/c.nii.gz"):
            assert client.delete(f"/api/datasets/{ds}/files/{f['id']}").status_code == 204
    assert client.post(f"/api/datasets/{ds}/commit").status_code == 200


def test_images_folder_alone_is_an_ordinary_dataset(client, ds):
    """A folder named images/ without labels/ is what many unlabelled uploads look like."""
    assert put(client, ds, "images/a.nii.gz", image()).status_code == 201
    body = client.post(f"/api/datasets/{ds}/commit").json()
    assert body["status"] == "ready" and body["labelled"] is False and body["labelled_data"] is None


def test_2d_png_masks(client, ds):
    mask = np.zeros((12, 16), np.uint8)
    mask[:3] = 1
    mask[3:5] = 2
    assert put(client, ds, "images/a.png", png(np.full((12, 16), 90))).status_code == 201
    assert put(client, ds, "labels/a.png", png(mask)).status_code == 201
    r = put(client, ds, "labels/b.png", png(np.zeros((12, 16, 3)), "RGB"))
    assert r.status_code == 422 and "a label map has one channel; this file has 3 (RGB)" in r.json()["detail"]
    r = put(client, ds, "images/c.png", png(np.zeros((12, 15))))
    assert put(client, ds, "labels/c.png", png(np.zeros((12, 16)))).status_code == 422
    assert r.status_code == 201
    body = client.get(f"/api/datasets/{ds}").json()
    assert body["labelled_data"]["pairs"][0]["voxels_per_class"] == {"0": 7 * 16, "1": 3 * 16, "2": 2 * 16}
    assert body["kind"] is None and body["labelled_data"]["classes"] == [0, 1, 2]


def test_pair_on_two_grids_that_arrived_together_is_caught_at_commit(client, app, ds):
    """Image and label sent at the same moment both find no partner on arrival: commit checks
    the stored grids again."""
    import threading

    barrier = threading.Barrier(2)
    from backend import labelled_store

    original = labelled_store._partner

    def partner_after_both_arrived(*args):  # both look for a partner before either is stored
        found = original(*args)
        barrier.wait(timeout=60)
        return found

    labelled_store._partner = partner_after_both_arrived
    try:
        results = {}
        threads = [threading.Thread(target=lambda p=p, d=d: results.__setitem__(p, put(client, ds, p, d).status_code))
                   for p, d in (("images/a.nii.gz", image()), ("labels/a.nii.gz", label(shape=(6, 7, 9))))]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        labelled_store._partner = original
    assert results == {"images/a.nii.gz": 201, "labels/a.nii.gz": 201}
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": "files/labels/a.nii.gz", "msg": (
        "labels/a.nii.gz: grid (6, 7, 9) differs from its image's (6, 7, 8) (images/a.nii.gz); a label must "
        "be on its image's grid; remove one of the two.")}]
