"""Sampling a run to files (NIfTI with the data's spacing, PNG previews) and the safetensors export."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from train_helpers import tiny_cfg, write_images, write_volumes

from ddpm.config import load_config
from ddpm.export import ENCODER_PREFIXES, export_run, load_encoder, load_pretrained
from ddpm.nn import UNet
from ddpm.run.checkpoint import latest_checkpoint, load_checkpoint
from ddpm.run.errors import RunError
from ddpm.run.sample_files import mid_slices, nifti_affine
from ddpm.sample import sample_run
from ddpm.train import run_training


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    root = tmp_path_factory.mktemp("run3d")
    # 16 x 16 x 8 voxels of 1 x 1 x 2 mm: a 16 mm cube, so 16^3 at 1 mm after aspect-keeping resize
    data = write_volumes(root / "data", shape=(16, 16, 8), spacing=(1.0, 1.0, 2.0))
    cfg = tiny_cfg(data, root / "exp", is_3d=True, model={"iterations": 2})
    run_training(cfg, root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def run2d(tmp_path_factory):
    root = tmp_path_factory.mktemp("run2d")
    cfg = tiny_cfg(write_images(root / "data"), root / "exp", model={"iterations": 2})
    run_training(cfg, root / "run")
    return root / "run"


def test_3d_samples_are_float32_nifti_with_the_training_spacing(run3d, tmp_path):
    spacing = json.loads((run3d / "run.json").read_text())["output_spacing"]
    assert spacing == pytest.approx([1.0, 1.0, 1.0])
    calls = []
    files = sample_run(run3d, 3, sampler="ddim", steps=3, seed=1, out_dir=tmp_path / "out", batch_size=2,
                       progress=lambda done, total: calls.append((done, total)))
    assert [f.index for f in files] == [0, 1, 2]
    assert calls[-1] == (6, 6)  # 2 batches x 3 steps
    for f in files:
        img = nib.load(f.volume_path)
        assert f.volume_path.name.endswith(".nii.gz") and f.shape == (1, 16, 16, 16)
        assert img.shape == (16, 16, 16) and img.get_data_dtype() == np.float32
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        np.testing.assert_allclose(img.affine, nifti_affine(spacing, (16, 16, 16)))
        np.testing.assert_allclose(img.affine[:3, 3], [-7.5, -7.5, -7.5])  # centred
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        vol = np.asarray(img.dataobj)
        assert vol.min() >= 0.0 and vol.max() <= 1.0
        preview = Image.open(f.preview_path)
        # three 16-px panels + two 2-px gaps, upscaled to >= 128 px high
        assert preview.size == ((3 * 16 + 4) * 8, 16 * 8)
    manifest = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert manifest["sampler"] == "ddim" and manifest["ema"] and len(manifest["samples"]) == 3


def test_preview_slices_are_the_orthogonal_mid_planes():
    vol = np.zeros((8, 8, 8), np.float32)
    vol[4, :, :] = 1.0  # the sagittal mid plane
    panels = mid_slices(vol)
    axial, coronal, sagittal = panels[:, 0:8], panels[:, 10:18], panels[:, 20:28]
    assert sagittal.min() == 1.0                     # all of the sagittal panel is the plane
    assert axial[:, 4].min() == 1.0 and axial.sum() == 8  # a line in the others
    assert coronal[:, 4].min() == 1.0 and coronal.sum() == 8


def test_2d_samples_are_pngs_with_a_grid_and_seeded(run2d, tmp_path):
    files = sample_run(run2d, 5, sampler="dpmpp2m", steps=3, seed=7, out_dir=tmp_path / "a")
    assert all(f.volume_path is None and f.shape == (1, 16, 16) for f in files)
    assert [Image.open(f.preview_path).size for f in files] == [(16, 16)] * 5
    assert Image.open(tmp_path / "a" / "grid.png").size[0] >= 3 * 16
    again = sample_run(run2d, 5, sampler="dpmpp2m", steps=3, seed=7, out_dir=tmp_path / "b")
    other = sample_run(run2d, 5, sampler="dpmpp2m", steps=3, seed=7, out_dir=tmp_path / "c", use_ema=False)

    def pixels(fs):
        return np.stack([np.asarray(Image.open(f.preview_path)) for f in fs])

    assert np.array_equal(pixels(files), pixels(again))
    assert not np.array_equal(pixels(files), pixels(other))


def test_sampling_errors_name_the_problem(run2d, tmp_path):
    with pytest.raises(RunError, match="no checkpoints yet"):
        sample_run(tmp_path, 1)
    with pytest.raises(RunError, match="--sampler 'euler'"):
        sample_run(run2d, 1, sampler="euler")
    with pytest.raises(RunError, match="at most 50"):
        sample_run(run2d, 1, sampler="ddpm", steps=51)


def test_export_round_trip_full_and_encoder_only(run2d, tmp_path):
    full = export_run(run2d, tmp_path / "model.safetensors")
    state = load_checkpoint(latest_checkpoint(run2d / "checkpoints").path)
    ema = {k[len("unet."):]: v for k, v in state["ema"]["model"].items()}
    unet = load_pretrained(full)
    assert isinstance(unet, UNet) and not unet.training
    own = unet.state_dict()
    assert own.keys() == ema.keys()
    assert all(torch.equal(own[k], ema[k].float()) for k in own)
    with safe_open(str(full), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["layout"] == "full" and meta["weights"] == "ema" and meta["step"] == "2"
    assert load_config(json.loads(meta["config"])).dataset.image_size == 16

    enc = export_run(run2d, tmp_path / "enc.safetensors", encoder_only=True)
    with safe_open(str(enc), framework="pt") as fh:
        keys = set(fh.keys())
    assert keys and all(k.startswith(ENCODER_PREFIXES) for k in keys)
    assert {k.split(".")[0] for k in keys} == {"time_embed", "init_conv", "down", "downsamples", "mid"}
    assert keys == {k for k in ema if k.startswith(ENCODER_PREFIXES)}
    with pytest.raises(RunError, match="only the encoder"):
        load_pretrained(enc)

    fresh = UNet.from_config(load_config(state["config"]))
    decoder_before = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith("up.")}
    load_encoder(fresh, enc)
    got = fresh.state_dict()
    assert all(torch.equal(got[k], ema[k]) for k in keys)
    assert all(torch.equal(got[k], v) for k, v in decoder_before.items())  # decoder untouched
    wider = UNet(dims=2, image_size=16, dim=16, channel_mults=(1, 2), res_blocks=1, num_head_channels=8)
    with pytest.raises(RunError, match="has shape"):
        load_encoder(wider, enc)
    deeper = UNet(dims=2, image_size=16, dim=8, channel_mults=(1, 2), res_blocks=2, num_head_channels=8)
    with pytest.raises(RunError, match="missing"):
        load_encoder(deeper, enc)
