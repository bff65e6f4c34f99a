"""Labelled datasets (images/ + labels/, or nnU-Net imagesTr/ + labelsTr/): each uploaded file is
placed in its pair as it arrives, a label is read once to check its values and count voxels per
class, and the pairs are summed up for the API. The rules are the engine's own
(``ddpm.finetune.label_rules``, torch-free); this module only reads files and rows.
"""
from __future__ import annotations

import collections
import gzip
from pathlib import Path
from typing import Any, Optional

import nibabel as nib
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import DatasetFile
from backend.sniff import EXTENSIONS, FileInfo, Rejected, nifti_version
from ddpm.finetune.label_rules import LAYOUTS, PairRole, class_voxels, grid_problem, label_value_problem, pair_role

IMAGE, LABEL = "image", "label"
# PIL modes of one number per pixel ("P": palette indices are the classes), as the engine reads them
_PIL_LABEL_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F")


def _ext(path: str) -> str:
    lower = path.lower()
    return next((ext for ext, _ in EXTENSIONS if lower.endswith(ext)), "")


def role_of(path: str) -> Optional[PairRole]:
    """The file's place in a labelled layout; Rejected for an nnU-Net image that cannot pair."""
    parts = path.split("/")
    suffixed = {images: suffix for images, _, suffix in LAYOUTS if suffix}
    if len(parts) >= 2 and parts[-2] in suffixed:
        name = parts[-1]
        stem = name[: len(name) - len(_ext(name))]
        if not stem.endswith(suffixed[parts[-2]]):
            raise Rejected(422, f"an nnU-Net image is named <case>{suffixed[parts[-2]]}.<ext> (only "
                                "single-channel cases are supported)")
    return pair_role(path, _ext(path))


def spatial_shape(info_shape: list[int], kind: str) -> list[int]:
    return list(info_shape[: 3 if kind == "3d" else 2])


def _read_values(temp_path: Path, info: FileInfo) -> np.ndarray:
    """The label's voxels (file axis order), refusing what cannot be a label map."""
    if info.format in ("nifti", "nifti-gz"):
        opener = gzip.open if info.format == "nifti-gz" else open
        with opener(temp_path, "rb") as fh:
            head = fh.read(540)
            fh.seek(0)
            klass = nib.Nifti2Image if nifti_version(head) == 2 else nib.Nifti1Image
            img = klass.from_stream(fh)
            values = np.asarray(img.dataobj)
        if info.channels != 1:
            raise Rejected(422, f"a label map has one channel; this file has {info.channels}")
        return values.reshape(spatial_shape(info.shape, info.kind))
    if info.format == "npy":
        if info.channels != 1:
            raise Rejected(422, f"a label map has one channel; this file has {info.channels}")
        return np.load(temp_path, allow_pickle=False)
    from PIL import Image, ImageSequence

    with Image.open(temp_path) as im:
        if im.mode not in _PIL_LABEL_MODES:
            raise Rejected(422, f"a label map has one channel; this file has {info.channels} ({im.mode})")
        return np.stack([np.asarray(f, dtype=np.float64) for f in ImageSequence.Iterator(im)])


def _partner(session: Session, dataset_id: int, role: PairRole) -> Optional[DatasetFile]:
    other = LABEL if role.role == IMAGE else IMAGE
    key = f"{role.root}/{role.case}"
    return session.scalar(select(DatasetFile).where(DatasetFile.dataset_id == dataset_id,
                                                    DatasetFile.pair_case == key, DatasetFile.label_role == other))


def _grid_of(image: DatasetFile, label: DatasetFile) -> Optional[str]:
    return grid_problem(spatial_shape(label.shape, label.kind), spatial_shape(image.shape, image.kind),
                        np.asarray(label.affine) if label.affine else None,
                        np.asarray(image.affine) if image.affine else None, image.path)


def upload_fields(session: Session, dataset_id: int, rel: str, info: FileInfo, temp_path: Path) -> dict[str, Any]:
    """The pair columns of an arriving file, after checking it against the pair rules (Rejected
    naming the reason; the caller prefixes the file's path). {} for a file outside any layout."""
    role = role_of(rel)
    if role is None:
        return {}
    fields: dict[str, Any] = {"label_role": role.role, "pair_case": f"{role.root}/{role.case}"}
    if role.role == LABEL:
        values = _read_values(temp_path, info)
        problem = label_value_problem(values)
        if problem:
            raise Rejected(422, problem)
        fields["label_classes"] = {str(k): v for k, v in class_voxels(values).items()}
    partner = _partner(session, dataset_id, role)
    if partner is not None and partner.path != rel:
        image, label = (partner, None) if role.role == LABEL else (None, partner)
        image_shape = spatial_shape(image.shape, image.kind) if image else spatial_shape(info.shape, info.kind)
        label_shape = spatial_shape(label.shape, label.kind) if label else spatial_shape(info.shape, info.kind)
        image_affine = image.affine if image else info.affine
        label_affine = label.affine if label else info.affine
        problem = grid_problem(label_shape, image_shape, np.asarray(label_affine) if label_affine else None,
                               np.asarray(image_affine) if image_affine else None,
                               image.path if image else rel.rsplit("/", 1)[-1])
        if problem:
            raise Rejected(422, problem if role.role == LABEL else f"its label {partner.path} is not on this "
                                                                   f"image's grid: {problem}")
    return fields


def pair_problems(files: list[DatasetFile]) -> list[dict[str, str]]:
    """Commit checks of a labelled dataset: every image has its label and back, one root."""
    paired = [f for f in files if f.label_role]
    if not any(f.label_role == LABEL for f in paired):
        return []  # images/ alone is an ordinary (unlabelled) folder
    problems: list[dict[str, str]] = []
    roots = sorted({f.pair_case.rsplit("/", 1)[0] for f in paired if f.pair_case})
    if len(roots) > 1:
        shown = ", ".join(r or "(top)" for r in roots)
        problems.append({"loc": "files", "msg": f"Labelled folders sit in {len(roots)} places ({shown}); "
                                                "a labelled dataset has one images/ + labels/ pair of folders."})
    by_case = collections.defaultdict(dict)
    for f in paired:
        by_case[f.pair_case][f.label_role] = f
    for roles in by_case.values():
        if IMAGE in roles and LABEL in roles:  # checked on arrival too, unless both came at once
            problem = _grid_of(roles[IMAGE], roles[LABEL])
            if problem:
                path = roles[LABEL].path
                problems.append({"loc": f"files/{path}", "msg": f"{path}: {problem}; remove one of the two."})
        for have, lacks in ((IMAGE, LABEL), (LABEL, IMAGE)):
            if have in roles and lacks not in roles:
                f = roles[have]
                role = pair_role(f.path, _ext(f.path))
                where = role.partner_dir if role else "the partner folder"
                problems.append({"loc": f"files/{f.path}",
                                 "msg": f"{f.path} has no {lacks} (expected one named "
                                        f"{role.partner_stem if role else '?'} in {where}/); upload it or "
                                        f"remove this file."})
    return sorted(problems, key=lambda p: p["loc"])


def summary(files: list[DatasetFile]) -> Optional[dict[str, Any]]:
    """The labelled view of a dataset's files for the API; None when it holds no labels."""
    labels = [f for f in files if f.label_role == LABEL]
    if not labels:
        return None
    images = {f.pair_case: f for f in files if f.label_role == IMAGE}
    totals: collections.Counter[str] = collections.Counter()
    pairs = []
    for label in sorted(labels, key=lambda f: f.path):
        counts = {k: int(v) for k, v in (label.label_classes or {}).items()}
        totals.update(counts)
        image = images.get(label.pair_case)
        pairs.append({"case": label.pair_case.rsplit("/", 1)[-1], "image": image, "label": label,
                      "voxels_per_class": counts})
    roots = sorted({f.pair_case.rsplit("/", 1)[0] for f in labels})
    return {"root": roots[0], "pairs": pairs,
            "classes": sorted(int(k) for k in totals),
            "voxels_per_class": {k: totals[k] for k in sorted(totals, key=int)}}
