"""The config schema: the seed's JSON loads as written, round trips, and every bad value is named."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm.config import ConfigError, config_to_dict, load_config

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "configs" / "config_3d.json"


def errors_of(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(data)
    return dict(info.value.errors)


def test_seed_config_loads_unchanged_with_its_meaning():
    cfg = load_config(SEED)
    assert cfg.is_3d and cfg.dims == 3
    unet = cfg.model.unet
    assert unet.channel_mults == [1, 2, 4]
    assert unet.attn_res == [16]  # the seed's int becomes the list of sides
    assert unet.num_head_channels == 4 and unet.res_blocks == 2 and unet.self_condition
    assert cfg.model.beta_schedule.train.n_timestep == 500
    assert cfg.dataset.grad_accumulation == 4 and cfg.dataset.image_size == 64


@pytest.mark.parametrize("name", sorted(str(p.relative_to(ROOT / "configs")) for p in (ROOT / "configs").rglob("*.json")
                                         if p.name != "index.json"))
def test_every_shipped_config_loads_and_round_trips(name, tmp_path):
    cfg = load_config(ROOT / "configs" / name)
    path = tmp_path / "again.json"
    path.write_text(json.dumps(config_to_dict(cfg)))
    assert load_config(path) == cfg


def test_defaults_build_a_valid_config():
    cfg = load_config({})
    assert cfg.model.unet.attn_res is None and cfg.model.precision == "auto"


def test_unknown_key_names_path_and_nearest_key():
    errs = errors_of({"model": {"unet": {"attn_rez": 16}}})
    assert "did you mean 'attn_res'" in errs["model.unet.attn_rez"]
    errs = errors_of({"datset": {}})
    assert "did you mean 'dataset'" in errs["datset"]


@pytest.mark.parametrize("data, path, words", [
    ({"model": {"optimizer": "sgd"}}, "model.optimizer", ["'sgd'", "adam", "adamw"]),
    ({"model": {"loss_type": "mse"}}, "model.loss_type", ["l1", "l2", "huber"]),
    ({"model": {"objective": "eps"}}, "model.objective", ["pred_noise", "pred_v"]),
    ({"model": {"precision": "fp8"}}, "model.precision", ["bf16", "fp16"]),
    ({"model": {"beta_schedule": {"train": {"schedule": "exp"}}}}, "model.beta_schedule.train.schedule",
     ["cosine", "sigmoid", "quadratic"]),
    ({"model": {"lr": -1}}, "model.lr", ["greater than 0"]),
    ({"dataset": {"batch_size": 0}}, "dataset.batch_size", ["greater than or equal to 1"]),
    ({"dataset": {"clip_percentiles": [5, 1]}}, "dataset.clip_percentiles", ["low < high"]),
    ({"dataset": {"intensity": {"window": [400, -1000]}}}, "dataset.intensity.window", ["low"]),
    ({"model": {"unet": {"channel_mults": [1, 0]}}}, "model.unet.channel_mults", ["positive"]),
    ({"gpu": "zero"}, "gpu", ["integer"]),
])
def test_bad_values_name_the_key_and_the_allowed_values(data, path, words):
    errs = errors_of(data)
    assert path in errs, errs
    for word in words:
        assert word in errs[path]


def test_cross_field_errors_name_what_would_work():
    errs = errors_of({"is_3d": True, "dataset": {"name": "volume3d", "image_size": 30}})
    assert "28 or 32" in errs["dataset.image_size"]
    errs = errors_of({"dataset": {"name": "image2d", "image_size": 32}, "model": {"unet": {"attn_res": [7]}}})
    assert "[32, 16, 8]" in errs["model.unet.attn_res"]
    errs = errors_of({"is_3d": True, "dataset": {"name": "image2d"}})
    assert "'volume3d'" in errs["dataset.name"]
    errs = errors_of({"dataset": {"name": "image2d", "image_size": 32},
                      "model": {"unet": {"dim": 20, "num_head_channels": 7}}})
    assert "model.unet.num_head_channels" in errs and "model.unet.dim" in errs


def test_test_schedule_only_sets_sampling_steps():
    ok = load_config({"model": {"beta_schedule": {"test": {"n_timestep": 100}}}})
    assert ok.model.beta_schedule.test.n_timestep == 100
    errs = errors_of({"model": {"beta_schedule": {"test": {"schedule": "cosine"}}}})
    assert "trained on" in errs["model.beta_schedule"]


def test_several_errors_are_all_reported():
    errs = errors_of({"model": {"optimizer": "sgd", "lr": 0}, "dataset": {"batch_size": -2}})
    assert {"model.optimizer", "model.lr", "dataset.batch_size"} <= set(errs)


def test_file_errors(tmp_path):
    assert "does not exist" in errors_of(tmp_path / "nope.json")[""]
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  \"gpu\": 0,,\n}")
    assert "line 2" in errors_of(bad)[""]
    bad.write_text("[1, 2]")
    assert "JSON object" in errors_of(bad)[""]


def test_config_module_does_not_import_torch():
    code = "import sys, ddpm.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_test_block_takes_trains_schedule_when_it_gives_only_the_steps():
    cfg = load_config({"model": {"beta_schedule": {"train": {"schedule": "cosine", "n_timestep": 500},
                                                   "test": {"n_timestep": 50}}}})
    assert cfg.model.beta_schedule.test.n_timestep == 50
    assert load_config(config_to_dict(cfg)) == cfg
    errs = errors_of({"model": {"beta_schedule": {"train": {"schedule": "cosine"},
                                                  "test": {"schedule": "linear"}}}})
    assert "test.schedule differs" in errs["model.beta_schedule"]


def test_every_key_carries_a_description_and_ui_metadata():
    from ddpm.config import CONFIG_KINDS, UI_GROUPS, WIDGETS
    from ddpm.config.fields import config_fields

    groups = [g.id for g in UI_GROUPS]
    for kind in CONFIG_KINDS:
        fields = config_fields(kind)  # raises SchemaError on a key without metadata
        assert len({f.path for f in fields}) == len(fields)
        for f in fields:
            assert f.description and f.label and f.group in groups and f.widget in WIDGETS, f.path
            if f.widget == "enum":
                assert f.options, f.path
    paths = {f.path: f for f in config_fields("train")}
    assert paths["model.optimizer"].options == ["adam", "adamw"]
    assert paths["model.metric_sampler"].default == "dpmpp2m"
    assert paths["dataset.intensity.window"].parent_nullable and paths["model.unet.attn_res"].nullable
    assert paths["model.lr"].exclusive_minimum == 0.0 and paths["model.lr"].maximum == 1.0


def test_a_key_without_ui_metadata_is_refused():
    from pydantic import BaseModel, Field

    from ddpm.config.fields import SchemaError, model_fields

    class Bare(BaseModel):
        x: int = Field(1, description="no ui")

    with pytest.raises(SchemaError, match="x needs"):
        model_fields(Bare)


@pytest.mark.parametrize("data, path, meant", [
    ({"model": {"lerning_rate": 1e-3}}, "model.lerning_rate", "'lr'"),
    ({"learning_rate": 1e-3}, "learning_rate", "'model.lr'"),
    ({"model": {"epochs": 10}}, "model.epochs", "'iterations'"),
    ({"steps": 10}, "steps", "'model.iterations'"),
    ({"dataset": {"batch": 8}}, "dataset.batch", "'batch_size'"),
])
def test_unknown_key_suggests_the_key_of_that_meaning(data, path, meant):
    assert f"did you mean {meant}" in errors_of(data)[path]


def test_presets_are_the_files_of_the_index_complete_and_paired_by_dims():
    from ddpm.config.fields import config_fields
    from ddpm.presets import PRESET_DIR, list_presets

    presets = list_presets()
    names = [p.name for p in presets]
    assert sorted(names) == sorted(p.stem for p in PRESET_DIR.glob("*.json") if p.name != "index.json")
    assert len(set(names)) == len(names) and all(p.title and p.note for p in presets)
    keys = {f.path for f in config_fields("train") if not f.parent_nullable}
    for p in presets:
        cfg = load_config(p.config)
        assert config_to_dict(cfg) == p.config
        flat = {k for k in keys if _has_path(p.config, k)}
        assert flat == keys, f"{p.name} lacks {keys - flat}"  # what the form fills is all there
        assert p.config["dataset"]["path"].startswith("examples/")
    # the 3D and 2D lists run in the same order of sizes, so a picker can swap one for the other
    by_dims = {d: [p.name.split("_")[0] for p in presets if p.config["is_3d"] == d] for d in (True, False)}
    assert by_dims[True] == by_dims[False] == ["tiny", "small", "base"]


def _has_path(data: dict, path: str) -> bool:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def test_a_broken_preset_is_named_by_its_file(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps([{"name": "bad", "title": "Bad", "note": "x"}]))
    (tmp_path / "bad.json").write_text(json.dumps({"model": {"lr": -1}}))
    from ddpm.presets import list_presets

    with pytest.raises(ConfigError, match="bad.json: model.lr"):
        list_presets(tmp_path)
