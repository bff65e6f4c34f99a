"""`ddpm inspect` on a labelled folder: pairs, classes with voxels per class, and each problem
(naming the file inside the folder)."""
import signal
import subprocess
import sys

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


def test_label_maps_are_planned_as_labels_not_intensities(tmp_path, capsys):
    label = np.zeros((6, 6, 4), np.uint8)
    label[:2] = 3
    write_nifti(tmp_path / "imagesTr" / "a_0000.nii.gz", np.linspace(0, 1, 144, dtype=np.float32).reshape(6, 6, 4))
    write_nifti(tmp_path / "labelsTr" / "a.nii.gz", label)
    assert main(["inspect", str(tmp_path), "--image-size", "8"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.endswith(")") or "->" in line}
    assert "(nearest)" in rows["labelsTr/a.nii.gz"] and "classes kept" in rows["labelsTr/a.nii.gz"]
    assert "clip" not in rows["labelsTr/a.nii.gz"]
    assert "clip" in rows["imagesTr/a_0000.nii.gz"] and "nearest" not in rows["imagesTr/a_0000.nii.gz"]


def test_a_reader_that_stops_early_ends_the_listing_without_a_traceback(tmp_path):
    for i in range(400):  # rows of long names: more than a pipe's buffer (64 KiB)
        write_png(tmp_path / f"{'scan' * 50}{i:03d}.png", np.full((4, 4), i % 256, np.uint8))
    proc = subprocess.Popen([sys.executable, "-m", "ddpm", "inspect", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"file")
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and proc.returncode == 128 + signal.SIGPIPE, err.decode()
