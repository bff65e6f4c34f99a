"""Uploads: valid files of every type are described correctly; hostile ones are refused with the
right status and leave nothing behind (no file under DATA_DIR, no row in the database)."""
from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from upload_files import nifti_bytes, npy_bytes, png_bytes
from PIL import Image
from sqlalchemy import func, select

from backend.models import DatasetFile


def stored_files(settings) -> list[Path]:
    """Every regular file under DATA_DIR except the database's own."""
    root = settings.resolved_data_dir
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith("db.sqlite"))


def row_count(app) -> int:
    with app.state.session_factory() as s:
        return s.scalar(select(func.count(DatasetFile.id)))


@pytest.fixture
def ds(client) -> int:
    return client.post("/api/datasets", json={"name": "uploads"}).json()["id"]


def test_nifti_gz_upload_is_described_from_its_header(client, settings, ds):
    data = nifti_bytes(shape=(8, 9, 10), zooms=(1.0, 1.5, 2.0))
    r = client.put(f"/api/datasets/{ds}/files/scans/volumes/a.nii.gz", content=data)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["path"] == "scans/volumes/a.nii.gz"
    assert rec["shape"] == [8, 9, 10] and rec["spacing"] == [1.0, 1.5, 2.0]
    assert rec["dtype"] == "float32" and rec["kind"] == "3d" and rec["size_bytes"] == len(data)
    on_disk = settings.resolved_data_dir / "datasets" / str(ds) / "files" / "scans/volumes/a.nii.gz"
    assert on_disk.read_bytes() == data
    # the stored file is a real NIfTI nibabel reads back
    assert nib.load(on_disk).shape == (8, 9, 10)
    assert stored_files(settings) == [on_disk.relative_to(settings.resolved_data_dir)]  # no temp left


@pytest.mark.parametrize("name,data,shape,kind,channels", [
    ("a.nii", nifti_bytes((6, 7, 8), gz=False), [6, 7, 8], "3d", 1),
    ("multi.nii.gz", nifti_bytes((6, 7, 8, 2)), [6, 7, 8, 2], "3d", 2),
    ("v.npy", npy_bytes((4, 5, 6)), [4, 5, 6], "3d", 1),
    ("i.png", png_bytes((16, 12)), [12, 16], "2d", 1),
    ("rgb.png", png_bytes((16, 12), "RGB"), [12, 16, 3], "2d", 3),
    ("grey-alpha.png", png_bytes((16, 12), "LA"), [12, 16], "2d", 1),  # alpha carries no intensity
    ("flat.npy", npy_bytes((4, 5)), [4, 5], "2d", 1),
    ("slice.nii.gz", nifti_bytes((6, 7, 1)), [6, 7], "2d", 1),
    ("vector.nii.gz", nifti_bytes((6, 7, 8, 1, 3)), [6, 7, 8, 3], "3d", 3),  # ITK vector layout
])
def test_each_supported_type(client, ds, name, data, shape, kind, channels):
    r = client.put(f"/api/datasets/{ds}/files/{name}", content=data)
    assert r.status_code == 201, r.text
    assert (r.json()["shape"], r.json()["kind"], r.json()["channels"]) == (shape, kind, channels)


def test_nifti2_upload(client, ds):
    img = nib.Nifti2Image(np.zeros((5, 6, 7), np.int16), np.diag([0.5, 0.5, 3.0, 1.0]))
    r = client.put(f"/api/datasets/{ds}/files/n2.nii.gz", content=gzip.compress(img.to_bytes()))
    assert r.status_code == 201, r.text
    assert (r.json()["shape"], r.json()["spacing"], r.json()["dtype"]) == ([5, 6, 7], [0.5, 0.5, 3.0], "int16")


def test_multipage_tiff_is_a_volume(client, ds):
    buf = io.BytesIO()
    pages = [Image.new("L", (10, 20), i) for i in range(5)]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    r = client.put(f"/api/datasets/{ds}/files/stack.tif", content=buf.getvalue())
    assert r.status_code == 201, r.text
    assert (r.json()["shape"], r.json()["kind"]) == ([5, 20, 10], "3d")


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("TIFF", "tif")])
def test_jpeg_and_tiff(client, ds, fmt, ext):
    buf = io.BytesIO()
    Image.new("L", (10, 20), 7).save(buf, format=fmt)
    r = client.put(f"/api/datasets/{ds}/files/x.{ext}", content=buf.getvalue())
    assert r.status_code == 201, r.text
    assert r.json()["shape"] == [20, 10]


def _gzip_bomb() -> bytes:
    """A valid small NIfTI header followed by far more zeros than it declares (~200 MB inflated)."""
    head = nifti_bytes((4, 4, 4), gz=False)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [comp.compress(head)]
    zeros = bytes(1 << 20)
    for _ in range(200):
        out.append(comp.compress(zeros))
    out.append(comp.flush())
    return b"".join(out)


def _huge_dims_header() -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.float32)
    return gzip.compress(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1024)


def _png_with_bad_crc_truncated() -> bytes:
    data = png_bytes((64, 64))
    return data[: len(data) // 2]


HOSTILE = [
    # (id, path as sent in the URL, body, status)
    ("traversal", "%2e%2e/%2e%2e/escape.nii.gz", nifti_bytes(), 400),
    ("traversal-inner", "a/%2e%2e/%2e%2e/b.nii.gz", nifti_bytes(), 400),
    ("absolute", "%2Fetc%2Fpasswd.nii", nifti_bytes(gz=False), 400),
    ("backslash", "a%5C..%5Cb.nii.gz", nifti_bytes(), 400),
    ("nul", "a%00.nii.gz", nifti_bytes(), 400),
    ("control", "a%0Ab.nii.gz", nifti_bytes(), 400),
    ("rtl-override", "evil%E2%80%AEzg.iin.png", png_bytes(), 400),
    ("hidden", ".hidden/a.nii.gz", nifti_bytes(), 400),
    ("dotfile", "x/.DS_Store.nii", nifti_bytes(gz=False), 400),
    ("empty-part", "a//b.nii.gz", nifti_bytes(), 400),
    ("overlong", "a" * 300 + ".nii.gz", nifti_bytes(), 400),
    ("unknown-ext", "notes.txt", b"hello", 415),
    ("wrong-magic", "a.nii.gz", b"this is not gzip at all, just text....", 415),
    ("png-named-nii-gz", "a.nii.gz", png_bytes(), 415),
    ("nifti-named-png", "a.png", nifti_bytes(gz=False), 415),
    ("gzip-of-text", "a.nii.gz", gzip.compress(b"x" * 4000), 415),
    ("truncated-gzip", "a.nii.gz", nifti_bytes((16, 16, 16))[:-200], 422),
    ("truncated-nifti-data", "a.nii.gz", gzip.compress(nifti_bytes((16, 16, 16), gz=False)[:-500]), 422),
    ("truncated-nii", "a.nii", nifti_bytes((16, 16, 16), gz=False)[:-500], 422),
    ("gzip-bomb", "bomb.nii.gz", _gzip_bomb(), 413),
    ("huge-dims", "huge.nii.gz", _huge_dims_header(), 413),
    ("empty", "empty.nii.gz", b"", 422),
    ("empty-png", "empty.png", b"", 422),
    ("truncated-png", "t.png", _png_with_bad_crc_truncated(), 422),
    ("npy-pickle", "p.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) +
     b"{'descr': '|O', 'fortran_order': False, 'shape': (2, 2, 2), }".ljust(117) + b"\n" + b"\x80" * 64, 415),
    ("npy-truncated", "t.npy", npy_bytes((4, 5, 6))[:-10], 422),
    ("npy-5d", "five.npy", npy_bytes((2, 3, 4, 5, 6)), 422),
    ("time-series", "ts.nii.gz", nifti_bytes((4, 4, 4, 40)), 422),
    ("complex-nifti", "c.nii.gz", nifti_bytes((4, 4, 4), dtype=np.complex64), 415),
]


@pytest.mark.parametrize("path,body,status", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_upload_refused_and_leaves_nothing(client, app, settings, ds, path, body, status):
    r = client.put(f"/api/datasets/{ds}/files/{path}", content=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    assert str(settings.resolved_data_dir) not in detail and "Traceback" not in detail
    assert stored_files(settings) == []
    assert row_count(app) == 0
    assert client.get(f"/api/datasets/{ds}").json()["files"] == []
    # nothing escaped the data dir either
    assert not (settings.resolved_data_dir.parent / "escape.nii.gz").exists()


def test_refusal_names_the_file_and_reason(client, ds):
    r = client.put(f"/api/datasets/{ds}/files/scans/a.nii.gz", content=png_bytes())
    assert r.status_code == 415
    assert r.json()["detail"].startswith("scans/a.nii.gz: ") and "png" in r.json()["detail"]


def test_file_over_max_file_bytes_is_413_while_streaming(client, app, settings, ds):
    big = np.zeros((170, 170, 80), np.float32)  # 9.2 MB > 8 MiB limit
    buf = io.BytesIO()
    np.save(buf, big)

    def chunks():  # no Content-Length: the limit must trip during streaming
        data = buf.getvalue()
        for i in range(0, len(data), 1 << 16):
            yield data[i:i + (1 << 16)]

    r = client.put(f"/api/datasets/{ds}/files/big.npy", content=chunks())
    assert r.status_code == 413, r.text
    assert "limit" in r.json()["detail"]
    assert stored_files(settings) == [] and row_count(app) == 0


def test_dataset_total_over_max_dataset_bytes_is_413(client, app, settings, ds):
    one = npy_bytes((150, 150, 80))  # 7.2 MB each; limit 32 MiB total
    for i in range(4):
        assert client.put(f"/api/datasets/{ds}/files/v{i}.npy", content=one).status_code == 201
    r = client.put(f"/api/datasets/{ds}/files/v4.npy", content=one)
    assert r.status_code == 413 and "dataset" in r.json()["detail"]
    assert row_count(app) == 4 and len(stored_files(settings)) == 4
    # replacing an existing file does not count its old size twice
    assert client.put(f"/api/datasets/{ds}/files/v0.npy", content=one).status_code == 201


def test_resent_file_replaces_the_old_one(client, app, settings, ds):
    first = client.put(f"/api/datasets/{ds}/files/a.nii.gz", content=nifti_bytes((4, 4, 4))).json()
    second = client.put(f"/api/datasets/{ds}/files/a.nii.gz", content=nifti_bytes((6, 6, 6))).json()
    assert second["id"] == first["id"] and second["shape"] == [6, 6, 6]
    assert row_count(app) == 1 and len(stored_files(settings)) == 1
    got = client.get(f"/api/datasets/{ds}/files/{first['id']}")
    assert gzip.decompress(got.content)[:4] == struct.pack("<i", 348)


def test_refused_resend_keeps_the_old_file(client, app, settings, ds):
    good = nifti_bytes((4, 4, 4))
    rec = client.put(f"/api/datasets/{ds}/files/a.nii.gz", content=good).json()
    assert client.put(f"/api/datasets/{ds}/files/a.nii.gz", content=png_bytes()).status_code == 415
    assert client.get(f"/api/datasets/{ds}/files/{rec['id']}").content == good
    assert row_count(app) == 1 and len(stored_files(settings)) == 1


def test_path_conflicting_with_a_file_is_409(client, settings, ds):
    assert client.put(f"/api/datasets/{ds}/files/a.npy", content=npy_bytes()).status_code == 201
    r = client.put(f"/api/datasets/{ds}/files/a.npy/b.npy", content=npy_bytes())
    assert r.status_code == 409
    assert len(stored_files(settings)) == 1


def test_upload_to_unknown_or_committed_dataset(client, make_dataset):
    assert client.put("/api/datasets/999/files/a.npy", content=npy_bytes()).status_code == 404
    ready = make_dataset({"a.npy": npy_bytes()})
    r = client.put(f"/api/datasets/{ready}/files/b.npy", content=npy_bytes())
    assert r.status_code == 409 and "ready" in r.json()["detail"]


def test_gzip_bomb_is_refused_by_the_inflate_cap(client, ds):
    r = client.put(f"/api/datasets/{ds}/files/bomb.nii.gz", content=_gzip_bomb())
    assert r.status_code == 413 and "gzip bomb" in r.json()["detail"]


def test_huge_dims_refused_from_the_header(client, ds):
    r = client.put(f"/api/datasets/{ds}/files/huge.nii.gz", content=_huge_dims_header())
    assert r.status_code == 413 and "30000" in r.json()["detail"]


@pytest.mark.parametrize("libname", ["zlib", "isal"])
def test_inflater_gives_the_same_answers_with_zlib_and_isal(libname):
    """The upload check inflates with ISA-L when installed, else zlib: both must judge alike."""
    import importlib

    from backend.sniff import Limits, Rejected
    from backend.uploads import GzipNiftiInflater

    lib = importlib.import_module("isal.isal_zlib" if libname == "isal" else "zlib")
    limits = Limits(max_dim=512, max_voxels=256**3, max_decompressed_bytes=64 << 20)

    def judge(data: bytes):
        inf = GzipNiftiInflater(limits, lib=lib)
        try:
            for i in range(0, len(data), 4096):
                inf.feed(data[i:i + 4096])
            return inf.finish().shape
        except Rejected as exc:
            return exc.status

    good = nifti_bytes((16, 16, 16))
    raw = nifti_bytes((16, 16, 16), gz=False)
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    assert judge(good) == [16, 16, 16]
    assert judge(gzip.compress(raw[:200]) + gzip.compress(raw[200:])) == [16, 16, 16]  # two members
    assert judge(good[:-100]) == 422  # truncated
    assert judge(bytes(corrupt)) == 422  # bad data or CRC
    assert judge(_gzip_bomb()) == 413
    assert judge(gzip.compress(b"not a nifti" * 100)) == 415
