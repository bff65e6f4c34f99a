"""Fine-tuning end to end on real NIfTI files: a tiny pretrained run, then `ddpm finetune`,
`ddpm evaluate` and `ddpm predict` through the CLI, exact resume, scratch runs, the weights
loaded, the label checks, the Dice and the way labels and predictions move between grids."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from finetune_helpers import AFFINE, SHAPE, ft_dict, phantom, pretrain, write_json, write_labelled
from train_helpers import Recorder

from ddpm.cli import main
from ddpm.config import ConfigError, load_finetune_config
from ddpm.data.io import DataError, read_header
from ddpm.export import export_run
from ddpm.finetune.grid import label_on_model_grid, probabilities_to_file_grid, settings_for
from ddpm.finetune.labelled import check_pair, find_pairs, labelled_pairs
from ddpm.finetune.losses import dice_ce_loss, dice_per_class, mean_over
from ddpm.finetune.segmenter import HEAD_KEYS, build_segmenter
from ddpm.finetune.trainer import FinetuneTrainer, resolve


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """(labelled folder, pretrained run folder, a scratch folder for this module)."""
    tmp = tmp_path_factory.mktemp("ft")
    data = write_labelled(tmp / "labelled", n=5)
    return data, pretrain(tmp, data / "images"), tmp


# ---- Dice and loss ---------------------------------------------------------------------------
def test_dice_per_class_on_a_hand_computed_case():
    label = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    pred = np.array([0, 1, 1, 0, 2, 0, 2, 0])
    # class 1: 2 overlap, 2 + 3 voxels -> 4/5; class 2: 1 overlap, 2 + 2 -> 2/4; class 3 absent
    # from both -> 1.0; background is not scored
    scores = dice_per_class(pred, label, 4)
    assert scores == pytest.approx({"1": 0.8, "2": 0.5, "3": 1.0})
    other = dice_per_class(label, label, 4)
    mean, per_class = mean_over([scores, other], 4)
    assert per_class == pytest.approx({"1": 0.9, "2": 0.75, "3": 1.0})
    assert mean == pytest.approx((0.9 + 0.75 + 1.0) / 3)


def test_dice_ce_loss_is_small_when_right_and_large_when_wrong():
    target = torch.tensor([[0, 1, 2, 1]])
    right = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 20
    wrong = torch.nn.functional.one_hot((target + 1) % 3, 3).movedim(-1, 1).float() * 20
    assert float(dice_ce_loss(right, target)) < 1e-3
    assert float(dice_ce_loss(wrong, target)) > 10


# ---- grids -----------------------------------------------------------------------------------
def test_labels_go_to_the_model_grid_and_predictions_come_back_to_the_file_grid(tmp_path):
    data = write_labelled(tmp_path, n=1)
    [pair] = labelled_pairs(data, 3)
    cfg = load_finetune_config({"is_3d": True, "task": {"num_classes": 3},
                                "dataset": {"image_size": 16, "path": str(data)},
                                "model": {"unet": {"dim": 8, "channel_mults": [1, 2], "num_head_channels": 8}}})
    settings = settings_for(cfg)
    header = read_header(pair.label)
    _, label = phantom(0)
    on_model = label_on_model_grid(label.astype(np.int64), header, settings)
    assert on_model.shape == (16, 16, 16) and set(np.unique(on_model)) == {0, 1, 2}  # nearest: no new values
    # an oracle's probabilities on the model grid come back as the label on the file's own grid
    probs = np.eye(3, dtype=np.float32)[on_model].transpose(3, 0, 1, 2)
    back = probabilities_to_file_grid(probs, header, settings)
    assert back.shape == SHAPE
    assert min(dice_per_class(back, label, 3).values()) > 0.85


# ---- labelled folders ------------------------------------------------------------------------
def test_label_problems_name_the_file_and_the_reason(tmp_path):
    data = write_labelled(tmp_path, n=4)
    labels = data / "labels"
    image, label = phantom(0)
    nib.save(nib.Nifti1Image(label.astype(np.float32) * 0.5, AFFINE), str(labels / "case00.nii.gz"))
    nib.save(nib.Nifti1Image(label[:, :, :10], AFFINE), str(labels / "case01.nii.gz"))
    shifted = AFFINE.copy()
    shifted[0, 3] += 2.0
    nib.save(nib.Nifti1Image(label, shifted), str(labels / "case02.nii.gz"))
    (data / "images" / "case03.nii.gz").unlink()
    nib.save(nib.Nifti1Image(image, AFFINE), str(data / "images" / "lonely.nii.gz"))

    pairs, problems = find_pairs(data)
    assert any(p.startswith(f"{labels / 'case03.nii.gz'}: has no image") for p in problems)
    assert any(p.startswith(f"{data / 'images' / 'lonely.nii.gz'}: has no label") for p in problems)
    with pytest.raises(DataError) as err:
        labelled_pairs(data, 3)
    text = str(err.value)
    assert "5 problems" in text
    reasons = {p.case: check_pair(p, 3) for p in pairs}
    assert reasons["case00"].startswith(f"{labels / 'case00.nii.gz'}: label has non-integer values (e.g. 0.5)")
    assert reasons["case01"].startswith(f"{labels / 'case01.nii.gz'}: grid (16, 16, 10) differs from its image's (16, 16, 12)")
    assert reasons["case02"].startswith(f"{labels / 'case02.nii.gz'}: affine differs from its image's")


def test_a_class_beyond_num_classes_and_the_nnunet_layout(tmp_path):
    data = write_labelled(tmp_path, n=2, nnunet=True)
    pairs = labelled_pairs(data, 3)
    assert [p.case for p in pairs] == ["case00", "case01"]
    assert pairs[0].image.name == "case00_0000.nii.gz"
    with pytest.raises(DataError, match=r"case00.nii.gz: has class 2 but task.num_classes is 2"):
        labelled_pairs(data, 2)


# ---- the segmenter's weights -----------------------------------------------------------------
def test_every_pretrained_weight_is_loaded_and_only_the_head_is_new(pretrained, tmp_path):
    data, run, _ = pretrained
    exported = export_run(run, tmp_path / "pre.safetensors")
    for path in (run, exported):  # a run folder and its export give the same weights
        cfg, source = resolve(load_finetune_config(ft_dict(data, tmp_path, path)))
        seg, report = build_segmenter(cfg, source)
        assert report.missing == [] and report.unexpected == []
        assert report.new == sorted(HEAD_KEYS)
        assert report.loaded == len(source.weights) - len(HEAD_KEYS)
        own = seg.unet.state_dict()
        for key, value in source.weights.items():
            if key not in HEAD_KEYS:
                assert torch.equal(own[key], value), key
        assert own["out_conv.weight"].shape[:2] == (3, source.weights["out_conv.weight"].shape[1])
        assert own["out_conv.weight"].shape[2:] == (1, 1, 1)  # a 1x1 head
    frozen, _ = build_segmenter(cfg.model_copy(update={"model": cfg.model.model_copy(update={"freeze": "encoder"})}),
                                source)
    train = {n for n, p in frozen.unet.named_parameters() if p.requires_grad}
    assert train and all(n.startswith(("up.", "upsamples.", "out_norm.", "out_conv.")) for n in train)


# ---- the CLI end to end ----------------------------------------------------------------------
def test_finetune_evaluate_and_predict_through_the_cli(pretrained, capsys):
    data, run, tmp = pretrained
    config = write_json(tmp / "ft.json", ft_dict(data, tmp / "runs", run))
    assert main(["finetune", "--config", str(config)]) == 0
    out = tmp / "runs" / "ft"
    assert (out / "train.log").is_file() and (out / "checkpoints" / "step-00000006-final.pt").is_file()
    saved = json.loads((out / "config.json").read_text())
    assert saved["is_3d"] is True and saved["dataset"]["image_size"] == 16  # the pretrained run's
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]
    assert set(rows[-1]["val_dice_per_class"]) == {"1", "2"} and 0 <= rows[-1]["val_dice"] <= 1

    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--data", str(data), "--out", str(tmp / "eval.json")]) == 0
    table = capsys.readouterr().out
    result = json.loads((tmp / "eval.json").read_text())
    assert set(result) == {"mean_dice", "per_class", "cases"}
    assert [c["file"] for c in result["cases"]] == [f"images/case{i:02d}.nii.gz" for i in range(5)]
    assert result["mean_dice"] == pytest.approx(np.mean(list(result["per_class"].values())))
    assert result["per_class"]["1"] == pytest.approx(np.mean([c["dice"]["1"] for c in result["cases"]]))
    assert "images/case03.nii.gz" in table and f"{result['mean_dice']:.4f}" in table

    assert main(["predict", "--run", str(out), "--data", str(data), "--out", str(tmp / "pred")]) == 0
    for i in range(5):
        pred = nib.load(str(tmp / "pred" / f"case{i:02d}.nii.gz"))
        assert pred.shape == SHAPE and np.allclose(pred.affine, AFFINE)
        assert np.issubdtype(pred.get_data_dtype(), np.integer)
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2}
    # evaluate scores exactly what predict wrote
    first = np.asarray(nib.load(str(tmp / "pred" / "case00.nii.gz")).dataobj)
    assert dice_per_class(first, phantom(0)[1], 3) == pytest.approx(result["cases"][0]["dice"])


def _losses(cfg, run_dir, source, stop_at=None):
    rec = Recorder(stop_at=stop_at)
    trainer = FinetuneTrainer(cfg, run_dir, rec, source)
    trainer.progress_interval_s = 0.0  # every step's loss
    return trainer.run(), rec.losses()


def test_a_stopped_and_resumed_finetune_gives_the_same_losses(pretrained):
    data, run, tmp = pretrained
    cfg, source = resolve(load_finetune_config(ft_dict(data, tmp / "resume", run)))
    result, straight = _losses(cfg, tmp / "resume" / "a", source)
    assert result.status == "completed" and len(straight) == 6
    stopped, first = _losses(cfg, tmp / "resume" / "b", source, stop_at=4)
    assert (stopped.status, stopped.step) == ("stopped", 4)
    resumed, second = _losses(cfg, tmp / "resume" / "b", source)
    assert resumed.status == "completed"
    assert {**first, **second} == pytest.approx(straight, rel=1e-6, abs=1e-7)
    other = cfg.model_copy(update={"task": cfg.task.model_copy(update={"num_classes": 4})})
    with pytest.raises(ConfigError, match=r"task.num_classes: 4 differs from the run's \(3\)"):
        _losses(other, tmp / "resume" / "b", source)


def test_scratch_trains_the_same_architecture_without_pretrained_weights(pretrained, tmp_path):
    data, run, _ = pretrained
    unet = json.loads((run / "config.json").read_text())["model"]["unet"]
    config = write_json(tmp_path / "scratch.json",
                        ft_dict(data, tmp_path, None, is_3d=True, dataset={"image_size": 16},
                                model={"unet": unet, "iterations": 2, "freq_metrics": 2}))
    assert main(["finetune", "--config", str(config)]) == 0
    saved = json.loads((tmp_path / "scratch" / "config.json").read_text())
    assert saved["pretrained"] is None and saved["model"]["unet"] == unet


def test_bad_input_exits_2_with_one_line_naming_it(pretrained, tmp_path, capsys):
    data, run, _ = pretrained
    bad = write_labelled(tmp_path / "bad", n=3)
    nib.save(nib.Nifti1Image(np.full(SHAPE, 0.5, np.float32), AFFINE), str(bad / "labels" / "case01.nii.gz"))
    cases = [
        (ft_dict(bad, tmp_path, run), "case01.nii.gz: label has non-integer values"),
        (ft_dict(data, tmp_path, run, model={"lerning_rate": 1}), "model.lerning_rate: unknown key (did you mean 'lr'?)"),
        (ft_dict(data, tmp_path, None, model={"freeze": "encoder"}), "model.freeze: 'encoder' keeps pretrained"),
        (ft_dict(data, tmp_path, run, is_3d=False), "is_3d: False differs from the pretrained run's True"),
        (ft_dict(data, tmp_path, tmp_path / "nowhere"), "is neither a training run folder nor a .safetensors"),
    ]
    for i, (cfg, message) in enumerate(cases):
        capsys.readouterr()
        assert main(["finetune", "--config", str(write_json(tmp_path / f"c{i}.json", cfg))]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["evaluate", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "e.json")]) == 2
    assert "is a training run" in capsys.readouterr().err


def test_2d_png_masks_from_scratch(tmp_path):
    from PIL import Image

    for sub in ("images", "labels"):
        (tmp_path / "lab" / sub).mkdir(parents=True)
    for i in range(3):
        label = np.zeros((20, 24), np.uint8)
        label[4:12, 3 + i:12 + i] = 1
        mask = Image.fromarray(label, "L")
        if i == 0:  # a palette mask: its indices are the classes, whatever colours they show
            mask = mask.convert("P")
            mask.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        mask.save(tmp_path / "lab" / "labels" / f"c{i}.png")
        Image.fromarray((label * 200 + 20).astype(np.uint8)).save(tmp_path / "lab" / "images" / f"c{i}.png")
    cfg = ft_dict(tmp_path / "lab", tmp_path / "runs", None, is_3d=False,
                  task={"num_classes": 2}, dataset={"image_size": 16},
                  model={"iterations": 2, "freq_metrics": 2,
                         "unet": {"dim": 8, "channel_mults": [1, 2], "num_head_channels": 8}})
    assert main(["finetune", "--config", str(write_json(tmp_path / "ft2d.json", cfg))]) == 0
    assert main(["predict", "--run", str(tmp_path / "runs" / "ft2d"), "--data", str(tmp_path / "lab"),
                 "--out", str(tmp_path / "pred")]) == 0
    for i in range(3):
        pred = np.asarray(Image.open(tmp_path / "pred" / f"c{i}.png"))
        assert pred.shape == (20, 24) and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}


def test_export_of_a_finetuned_run_is_the_segmenter(pretrained, tmp_path):
    from ddpm.finetune.inference import load_finetuned
    from ddpm.finetune.segmenter import load_segmenter
    from ddpm.run.errors import RunError

    data, run, tmp = pretrained
    config = write_json(tmp_path / "exp.json", ft_dict(data, tmp_path, run, model={"iterations": 1}))
    assert main(["finetune", "--config", str(config)]) == 0
    out = tmp_path / "seg.safetensors"
    assert main(["export", "--run", str(tmp_path / "exp"), "--out", str(out), "--no-ema"]) == 0
    seg, cfg = load_segmenter(out)
    assert cfg.task.num_classes == 3 and seg.unet.out_conv.out_channels == 3
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(seg(x), load_finetuned(tmp_path / "exp").model(x))
    with pytest.raises(RunError, match="'segmenter' layout"):  # not a pretrained U-Net
        resolve(load_finetune_config(ft_dict(data, tmp_path, out)))


def test_the_time_input_defaults_to_a_tenth_of_the_pretrained_diffusion_and_old_runs_keep_t0(pretrained, tmp_path):
    from ddpm.config.train import TrainConfig
    from ddpm.finetune.inference import load_finetuned
    from ddpm.run.checkpoint import latest_checkpoint, load_checkpoint

    data, run, _ = pretrained
    steps = TrainConfig.model_validate(json.loads((run / "config.json").read_text())).model.beta_schedule.train.n_timestep
    cfg, source = resolve(load_finetune_config(ft_dict(data, tmp_path, run)))
    assert cfg.model.timestep == round(steps / 10) > 0
    seg, _ = build_segmenter(cfg, source)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():  # the segmenter feeds that t: the same logits as the U-Net given it
        assert torch.equal(seg(x), seg.unet(x, torch.full((1,), cfg.model.timestep)))
    with pytest.raises(ConfigError, match=rf"model.timestep: {steps} is outside the pretrained run's diffusion"):
        resolve(load_finetune_config(ft_dict(data, tmp_path, run, model={"timestep": steps})))
    assert resolve(load_finetune_config(ft_dict(data, tmp_path, run, model={"timestep": 0})))[0].model.timestep == 0
    # the REST path: a config read without its source, the source's run applied after
    late = load_finetune_config(ft_dict(data, tmp_path, None)).with_pretrained(source.config)
    assert late.model.timestep == cfg.model.timestep
    # scratch: what a run of the default schedule (1000 timesteps) gets
    scratch, _ = build_segmenter(load_finetune_config(ft_dict(data, tmp_path, None)), None)
    assert scratch.timestep == 100

    # a run saved before the key existed (its config without model.timestep) was trained at t = 0
    config = write_json(tmp_path / "old.json", ft_dict(data, tmp_path, run, model={"iterations": 1, "timestep": 0}))
    assert main(["finetune", "--config", str(config)]) == 0
    ckpt = latest_checkpoint(tmp_path / "old" / "checkpoints").path
    state = load_checkpoint(ckpt)
    del state["config"]["model"]["timestep"]
    torch.save(state, ckpt)
    assert load_finetuned(tmp_path / "old").model.timestep == 0
