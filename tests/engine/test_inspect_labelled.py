"""`ddpm inspect` on a labelled folder: pairs, classes with voxels per class, and each problem
(naming the file inside the folder)."""
import numpy as np

from data_fixtures import write_nifti, write_png
from ddpm.cli import main


def test_inspect_reports_pairs_classes_and_problems(tmp_path, capsys):
    label = np.zeros((6, 6, 4), np.uint8)
    label[:2] = 1
    label[2:3] = 2
    for case in ("a", "b", "c", "lonely"):
        write_nifti(tmp_path / "images" / f"{case}.nii.gz", np.ones((6, 6, 4), np.float32))
    write_nifti(tmp_path / "labels" / "a.nii.gz", label)
    write_nifti(tmp_path / "labels" / "b.nii.gz", np.full((6, 6, 4), 0.5, np.float32))
    write_nifti(tmp_path / "labels" / "c.nii.gz", np.zeros((6, 6, 5), np.uint8))
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "labelled: 1 usable pair(s) of 3; voxels per class 0: 72, 1: 48, 2: 24" in out
    assert "3 labelling problem(s):" in out
    assert "  images/lonely.nii.gz: has no label" in out
    assert "  labels/b.nii.gz: label has non-integer values (e.g. 0.5)" in out
    assert "  labels/c.nii.gz: grid (6, 6, 5) differs from its image's (6, 6, 4)" in out
    assert str(tmp_path) not in out.split("labelled:")[1]  # files named inside the folder


def test_inspect_2d_png_masks_and_unlabelled_folders(tmp_path, capsys):
    mask = np.zeros((8, 8), np.uint8)
    mask[:2] = 3
    write_png(tmp_path / "seg" / "images" / "x.png", np.full((8, 8), 100, np.uint8))
    write_png(tmp_path / "seg" / "labels" / "x.png", mask)
    assert main(["inspect", str(tmp_path / "seg")]) == 0
    assert "labelled: 1 usable pair(s) of 1; voxels per class 0: 48, 3: 16" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "seg" / "images")]) == 0
    assert "labelled:" not in capsys.readouterr().out
