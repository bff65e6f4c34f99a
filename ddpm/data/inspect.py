"""``ddpm inspect PATH``: what is in a folder and what the loader will do to each file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .cache import CACHE_DIRNAME
from .io import SUPPORTED_EXTS, DataError, Header, file_ext, ras_axes, ras_spacing, read_header, read_image_file
from .preprocess import PreprocessSettings, check_header, intensity_bounds, resize_plan

Row = dict[str, Any]


def _other_files(root: Path) -> list[Path]:
    """Visible files the loader will not read (unsupported extension), for the summary."""
    if root.is_file():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != CACHE_DIRNAME)
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and not file_ext(f))
    return sorted(out)


def _fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _plan(header: Header, arr: np.ndarray, settings: PreprocessSettings, label: bool = False) -> list[str]:
    """What the loader does to the file; a label map (``label``) is resized by nearest neighbour
    and keeps its class numbers, as the fine-tune loader treats it."""
    actions = []
    spacing, shape = header.spacing, header.spatial_shape
    if settings.dims == 3 and header.axcodes is not None and "".join(header.axcodes) != "RAS":
        actions.append(f"reorient {''.join(header.axcodes)}->RAS")
        spacing, shape = ras_spacing(header), ras_axes(header, shape)
    if header.channels > 1:
        if header.channels == settings.channels:
            actions.append(f"{header.channels} channels")
        else:
            actions.append(f"{header.channels} channels -> {settings.channels}"
                           + (" (luminance)" if settings.channels == 1 else " (drop alpha)"))
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        actions.append(f"{bad} NaN/Inf -> min")
    n = settings.image_size
    target, pads = resize_plan(shape, spacing, n, settings.keep_aspect)
    cube = f"{n}^{settings.dims}"
    if tuple(shape) != tuple(target):
        actions.append(f"resize {_fmt_shape(shape)} -> {_fmt_shape(target)}" + (" (nearest)" if label else ""))
    if any(p != (0, 0) for p in pads):
        actions.append(f"pad to {cube}" + (" with background" if label else ""))
    if label:
        actions.append("classes kept as they are (label map)")
    elif settings.window is not None:
        actions.append(f"window [{settings.window[0]:g}, {settings.window[1]:g}] -> [0,1]")
    else:
        finite = arr[np.isfinite(arr)] if bad else arr
        lo, hi = intensity_bounds(finite, settings) if finite.size else (0.0, 0.0)
        how = "min/max" if settings.clip_percentiles is None else \
            f"p{settings.clip_percentiles[0]:g}/p{settings.clip_percentiles[1]:g}"
        actions.append(f"clip {how} [{lo:.4g}, {hi:.4g}] -> [0,1]")
    return actions


def inspect_file(path: Path | str, settings: Optional[PreprocessSettings] = None,
                 root: Optional[Path] = None, label: bool = False) -> Row:
    """One row: header facts, intensity range and the loader's plan (a label map's with
    ``label``), or the error."""
    path = Path(path)
    name = path.relative_to(root).as_posix() if root is not None and root.is_dir() else str(path)
    row: Row = {"file": name, "format": None, "shape": None, "spacing": None, "orientation": None,
                "dtype": None, "range": None, "nonfinite": 0, "actions": [], "error": None}
    try:
        header = read_header(path)
        row.update(format=header.fmt, shape=header.shape, dtype=header.dtype,
                   spacing=tuple(round(s, 4) for s in header.spacing),
                   orientation="".join(header.axcodes) if header.axcodes else None)
        file_settings = settings or PreprocessSettings(dims=header.dims, image_size=64,
                                                       channels=header.channels)
        check_header(header, file_settings)
        arr, _, _ = read_image_file(path, header)
        finite = np.isfinite(arr)
        row["nonfinite"] = int(arr.size - finite.sum())
        if finite.any():
            vals = arr[finite] if row["nonfinite"] else arr
            row["range"] = (float(vals.min()), float(vals.max()))
        row["actions"] = _plan(header, arr, file_settings, label)
    except DataError as exc:
        row["error"] = str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # a broken file must not stop the listing of the others
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def inspect_path(path: Path | str, *, is_3d: Optional[bool] = None, image_size: int = 64,
                 image_channels: Optional[int] = None, keep_aspect: bool = True,
                 clip_percentiles: Optional[Sequence[float]] = (0.5, 99.5),
                 window: Optional[Sequence[float]] = None) -> list[Row]:
    """Rows for every supported file under ``path`` (a folder, searched recursively, or a file).

    Without ``is_3d`` each file is planned as its own kind (volume or image); with it, files of
    the other kind get an error row. ``image_channels`` None takes each file's own channels.
    Files with other extensions come last as rows with ``skipped`` set. In a labelled folder the
    label maps are planned as labels (nearest neighbour, classes kept).
    """
    from ddpm.finetune.label_rules import LAYOUTS

    from .datasets import find_files

    root = Path(path)
    files = find_files(root, SUPPORTED_EXTS, exclude=[root / CACHE_DIRNAME])
    label_dirs = [root / labels for images, labels, _ in LAYOUTS
                  if root.is_dir() and (root / images).is_dir() and (root / labels).is_dir()]
    clip = None if clip_percentiles is None else tuple(clip_percentiles)
    win = None if window is None else tuple(window)
    rows = []
    for f in files:
        settings = None
        try:
            header = read_header(f)
            settings = PreprocessSettings(
                dims=header.dims if is_3d is None else (3 if is_3d else 2), image_size=image_size,
                channels=image_channels or header.channels, keep_aspect=keep_aspect,
                clip_percentiles=clip, window=win)
        except DataError:
            pass  # inspect_file reports why
        rows.append(inspect_file(f, settings, root, label=any(f.is_relative_to(d) for d in label_dirs)))
    for f in _other_files(root):
        rows.append({"file": f.relative_to(root).as_posix(), "skipped": True,
                     "error": f"not read: unsupported extension (supported: {', '.join(SUPPORTED_EXTS)})"})
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple) and value and all(isinstance(v, float) for v in value):
        return "x".join(f"{v:g}" for v in value)
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def format_inspect_table(rows: list[Row]) -> str:
    """A plain-text table of ``inspect_path`` rows, then unreadable and ignored files."""
    ok = [r for r in rows if not r.get("error")]
    bad = [r for r in rows if r.get("error") and not r.get("skipped")]
    skipped = [r for r in rows if r.get("skipped")]
    head = ("file", "shape", "spacing mm", "orient", "dtype", "range", "loader will")
    body = []
    for r in ok:
        rng = "-" if r["range"] is None else f"{r['range'][0]:.4g}..{r['range'][1]:.4g}"
        if r.get("nonfinite"):
            rng += f" ({r['nonfinite']} NaN/Inf)"
        body.append((r["file"], _cell(r["shape"]), _cell(r["spacing"]), _cell(r["orientation"]),
                     _cell(r["dtype"]), rng, "; ".join(r["actions"]) or "nothing"))
    lines = []
    if body:
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head) - 1)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        lines += [fmt.format(*head), fmt.format(*("-" * w for w in widths), "-" * 11)]
        lines += [fmt.format(*row) for row in body]
    if bad:
        lines += ["", f"cannot use {len(bad)} file(s):"] + [f"  {r['file']}: {r['error']}" for r in bad]
    if skipped:
        lines += ["", f"ignored {len(skipped)} file(s) with unsupported extensions: "
                  + ", ".join(r["file"] for r in skipped[:10]) + (" ..." if len(skipped) > 10 else "")]
    lines += ["", f"{len(ok)} usable, {len(bad)} unusable, {len(skipped)} ignored"]
    return "\n".join(lines)


def labelled_summary(path: Path | str) -> Optional[dict[str, Any]]:
    """A labelled folder's pairs, classes (voxels per class) and problems (one line each, naming
    the file relative to ``path``); None when ``path`` is not a labelled folder."""
    from ddpm.finetune.label_rules import LAYOUTS, class_voxels
    from ddpm.finetune.labelled import check_pair, find_pairs, read_label

    root = Path(path)
    if not root.is_dir() or not any((root / i).is_dir() and (root / l).is_dir() for i, l, _ in LAYOUTS):
        return None
    pairs, problems = find_pairs(root)
    voxels: dict[int, int] = {}
    good = 0
    for pair in pairs:
        problem = check_pair(pair)
        if problem:
            problems.append(problem)
            continue
        good += 1
        for k, n in class_voxels(read_label(pair.label)).items():
            voxels[k] = voxels.get(k, 0) + n
    prefix = f"{root}{os.sep}"
    return {"pairs": len(pairs), "usable": good, "voxels_per_class": dict(sorted(voxels.items())),
            "problems": [p.replace(prefix, "") for p in problems]}


def format_labelled_summary(summary: dict[str, Any]) -> str:
    """The labelled part of ``ddpm inspect``: pairs, classes with voxels, then each problem."""
    classes = ", ".join(f"{k}: {n}" for k, n in summary["voxels_per_class"].items()) or "none"
    lines = [f"labelled: {summary['usable']} usable pair(s) of {summary['pairs']}; voxels per class {classes}"]
    if summary["problems"]:
        lines += [f"{len(summary['problems'])} labelling problem(s):"] + [f"  {p}" for p in summary["problems"]]
    return "\n".join(lines)
