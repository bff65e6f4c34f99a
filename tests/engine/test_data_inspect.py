"""`ddpm inspect` logic: facts per file, the loader's plan, unreadable files with the reason."""
import numpy as np

from data_fixtures import LPS, NIBABEL_DATA, affine_for, write_nifti, write_png
from ddpm.data import format_inspect_table, inspect_path


def _lps_data():
    data = np.arange(8 * 8 * 4, dtype=np.int16).reshape(8, 8, 4)
    data[0, 0, 0] = -5
    return data


def _folder(tmp_path):
    data = _lps_data()
    write_nifti(tmp_path / "a" / "lps.nii.gz", data, affine_for((1.0, 1.0, 2.0), LPS))
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 1, 1] = np.nan
    write_nifti(tmp_path / "a" / "nan.nii", nan)
    (tmp_path / "a" / "broken.nii.gz").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "a" / "anatomical.nii").write_bytes((NIBABEL_DATA / "anatomical.nii").read_bytes())
    write_png(tmp_path / "a" / "slice.png", np.zeros((4, 6), np.uint8))


def test_rows_report_facts_and_plan(tmp_path):
    _folder(tmp_path)
    rows = {r["file"]: r for r in inspect_path(tmp_path, is_3d=True, image_size=16)}
    lps = rows["a/lps.nii.gz"]
    assert lps["shape"] == (8, 8, 4) and lps["spacing"] == (1.0, 1.0, 2.0)
    assert lps["orientation"] == "LPS" and lps["dtype"] == "int16" and lps["range"] == (-5.0, 255.0)
    lo, hi = np.percentile(_lps_data(), [0.5, 99.5])
    # 1x1x2 mm spacing makes 8x8x4 voxels a physical cube: no padding
    assert lps["actions"] == ["reorient LPS->RAS", "resize 8x8x4 -> 16x16x16",
                              f"clip p0.5/p99.5 [{lo:.4g}, {hi:.4g}] -> [0,1]"]
    anat = rows["a/anatomical.nii"]
    assert anat["dtype"] == "int16 (big-endian)" and anat["orientation"] == "LAS"
    assert "resize 33x41x25 -> 13x16x10" in anat["actions"] and "pad to 16^3" in anat["actions"]
    assert rows["a/nan.nii"]["nonfinite"] == 1 and "1 NaN/Inf -> min" in rows["a/nan.nii"]["actions"]
    assert rows["a/broken.nii.gz"]["error"].startswith("cannot read")
    assert rows["a/slice.png"]["error"].startswith("is a 2D image")
    assert rows["notes.txt"]["skipped"]


def test_window_and_4d_channels_in_plan():
    rows = inspect_path(NIBABEL_DATA / "example4d.nii.gz", is_3d=True, image_size=32,
                        image_channels=2, window=(-100, 400))
    assert rows[0]["shape"] == (128, 96, 24, 2)
    assert rows[0]["actions"] == ["reorient LAS->RAS", "2 channels", "resize 128x96x24 -> 32x24x7",
                                  "pad to 32^3", "window [-100, 400] -> [0,1]"]
    wrong = inspect_path(NIBABEL_DATA / "example4d.nii.gz", is_3d=True, image_channels=1)
    assert "2 volumes along the last axis" in wrong[0]["error"]


def test_without_settings_each_file_is_planned_as_its_own_kind(tmp_path):
    _folder(tmp_path)
    rows = {r["file"]: r for r in inspect_path(tmp_path)}
    assert rows["a/slice.png"]["error"] is None
    assert rows["a/slice.png"]["actions"][0] == "resize 4x6 -> 43x64"


def test_table_lists_usable_unusable_and_ignored(tmp_path):
    _folder(tmp_path)
    table = format_inspect_table(inspect_path(tmp_path, is_3d=True, image_size=16))
    lines = table.splitlines()
    assert lines[0].split() == ["file", "shape", "spacing", "mm", "orient", "dtype", "range", "loader", "will"]
    assert any(line.startswith("a/lps.nii.gz") and "reorient LPS->RAS" in line for line in lines)
    assert "cannot use 2 file(s):" in table and "  a/broken.nii.gz: cannot read" in table
    assert "ignored 1 file(s) with unsupported extensions: notes.txt" in table
    assert lines[-1] == "3 usable, 2 unusable, 1 ignored"
