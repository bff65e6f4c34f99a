"""Config routes on the real app: the schema with every key's UI metadata, the presets, the live
check (normalised config, exact size, errors like job creation's 422), and the proof that a key
added to the schema reaches the fields, the README table and the API with no other edit."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import pytest
from pydantic import Field
from upload_files import nifti_bytes

from ddpm import config as config_module
from ddpm.config import ModelConfig, TrainConfig, UNetConfig, config_to_dict, load_config
from ddpm.config.fields import config_fields

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import config_reference  # noqa: E402


def _leaves(data: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        out |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


def _schema_props(schema: dict, node: dict, path: list[str]) -> dict:
    """The JSON Schema property at a dotted path, following $ref and anyOf (Optional)."""
    for part in path:
        while "$ref" in node or "anyOf" in node:
            if "$ref" in node:
                node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
            else:
                node = next(n for n in node["anyOf"] if n.get("type") != "null")
        node = node["properties"][part]
    return node


def test_schema_lists_every_config_key_with_its_ui_metadata(client):
    r = client.get("/api/config/schema")
    assert r.status_code == 200
    body = r.json()
    groups = [g["id"] for g in body["groups"]]
    assert groups == ["general", "model", "diffusion", "training", "data"]
    train = body["kinds"]["train"]
    fields = {f["path"]: f for f in train["fields"]}
    # every key a full config has (and those of the optional blocks) is a described form field
    everything = load_config({"model": {"beta_schedule": {"test": {"n_timestep": 10}}},
                              "dataset": {"intensity": {"window": [0, 1]}}})
    assert _leaves(config_to_dict(everything)) == set(fields)
    for path, f in fields.items():
        assert f["label"] and f["description"] and f["group"] in groups, path
        ui = _schema_props(train["json_schema"], train["json_schema"], path.split("."))["ui"]
        assert ui == {k: f[k] for k in ("label", "group", "widget", "unit", "advanced", "requires")}, path
    assert fields["model.unet.num_head_channels"]["widget"] == "int"
    assert fields["model.unet.attn_res"]["widget"] == "sides" and fields["model.unet.attn_res"]["nullable"]
    assert fields["model.metric_sampler"]["options"] == ["ddpm", "ddim", "dpmpp2m"]
    assert fields["model.beta_schedule.test.n_timestep"]["parent_nullable"]


def test_presets_are_served_complete_and_check_ok(client):
    presets = client.get("/api/config/presets").json()
    assert [p["name"] for p in presets] == ["tiny_3d", "small_3d", "base_3d", "tiny_2d", "small_2d", "base_2d"]
    assert [p["title"] for p in presets][:2] == ["3D tiny", "3D small"]
    for p in presets:
        assert p["kind"] == "train" and p["note"]
        assert p["config"] == config_to_dict(load_config(ROOT / "configs" / "presets" / f"{p['name']}.json"))
        r = client.post("/api/config/check", json={"kind": "train", "config": p["config"]})
        assert r.status_code == 200 and r.json()["ok"] and r.json()["errors"] == [], p["name"]


def test_check_gives_the_normalised_config_and_the_exact_size(client):
    import torch

    from ddpm.nn.unet import UNet

    raw = {"is_3d": True, "dataset": {"image_size": 16, "image_channels": 2},
           "model": {"unet": {"dim": 16, "channel_mults": [1, 2, 3], "attn_res": 8, "linear_attn": True,
                              "num_head_channels": 16, "self_condition": True}}}
    r = client.post("/api/config/check", json={"kind": "train", "config": raw})
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] and body["errors"] == []
    cfg = load_config(raw)
    assert body["config"] == config_to_dict(cfg)  # defaults filled in, attn_res 8 -> [8]
    with torch.device("meta"):
        assert body["param_count"] == sum(p.numel() for p in UNet.from_config(cfg).parameters())
    assert 10 * 2**20 < body["train_memory_bytes"] < 2**30


@pytest.fixture
def ds3d(make_dataset) -> int:
    return make_dataset({"v/a.nii.gz": nifti_bytes(), "v/b.nii.gz": nifti_bytes()})


def test_check_errors_are_the_job_creation_422s(client, ds3d):
    bad = {"is_3d": True, "datset": {}, "dataset": {"image_size": 30, "batch_size": 0},
           "model": {"optimizer": "sgd", "lerning_rate": 1e-3, "unet": {"dim": 12}}}
    r = client.post("/api/config/check", json={"kind": "train", "config": bad})
    assert r.status_code == 200
    body = r.json()
    assert not body["ok"] and body["config"] is None and body["param_count"] is None
    errors = {e["loc"]: e["msg"] for e in body["errors"]}
    assert "did you mean 'dataset'" in errors["config.datset"]
    assert "did you mean 'lr'" in errors["config.model.lerning_rate"]
    assert "allowed values: 'adam', 'adamw'" in errors["config.model.optimizer"]
    assert "greater than or equal to 1" in errors["config.dataset.batch_size"]
    job = client.post("/api/jobs", json={"kind": "train", "dataset_id": ds3d, "config": bad})
    assert job.status_code == 422
    assert [e for e in job.json()["detail"] if e["loc"].startswith("config")] == body["errors"]
    # a cross-field reason, once the single-key errors are fixed
    cross = {"is_3d": True, "dataset": {"image_size": 30}}
    r = client.post("/api/config/check", json={"kind": "train", "config": cross}).json()
    assert r["errors"] == [{"loc": "config.dataset.image_size", "msg": r["errors"][0]["msg"]}]
    assert "28 or 32" in r["errors"][0]["msg"]


def test_check_refuses_an_unknown_kind_and_a_body_without_config(client):
    r = client.post("/api/config/check", json={"kind": "nope", "config": {}}).json()
    assert not r["ok"] and r["errors"][0]["loc"] == "kind" and "train" in r["errors"][0]["msg"]
    r = client.post("/api/config/check", json={"kind": "train"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "config"


def test_openapi_types_the_config_routes(client):
    doc = client.get("/openapi.json").json()
    comps = doc["components"]["schemas"]
    assert {"ConfigSchema", "ConfigField", "ConfigCheckOut", "ConfigWarning", "Preset", "UiGroup"} <= set(comps)
    ok = doc["paths"]["/api/config/check"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/ConfigCheckOut"}


# ---- the proof: one key added to the schema reaches every consumer ------------------------------

class _UNetWithKnob(UNetConfig):
    new_knob: Optional[int] = Field(None, ge=1, description="a key no consumer has heard of",
                                    json_schema_extra={"ui": {"label": "New knob", "group": "model",
                                                              "widget": "optional_int", "unit": None,
                                                              "advanced": False}})


class _ModelWithKnob(ModelConfig):
    unet: _UNetWithKnob = Field(default_factory=_UNetWithKnob, description="the denoising U-Net")


class _TrainWithKnob(TrainConfig):
    model: _ModelWithKnob = Field(default_factory=_ModelWithKnob, description="model and training")


def test_a_key_added_to_the_schema_appears_everywhere_with_no_other_edit(client, monkeypatch):
    monkeypatch.setitem(config_module.CONFIG_KINDS, "train", _TrainWithKnob)
    monkeypatch.setitem(config_module.CONFIG_KINDS, "finetune", _TrainWithKnob)

    [field] = [f for f in config_fields("train") if f.path == "model.unet.new_knob"]
    assert field.label == "New knob" and field.widget == "optional_int" and field.minimum == 1
    assert "| `model.unet.new_knob` | `null` | a key no consumer has heard of |" in config_reference.markdown()

    schema = client.get("/api/config/schema").json()
    for kind in ("train", "finetune"):
        served = {f["path"]: f for f in schema["kinds"][kind]["fields"]}
        assert served["model.unet.new_knob"]["label"] == "New knob"
        props = _schema_props(schema["kinds"][kind]["json_schema"], schema["kinds"][kind]["json_schema"],
                              ["model", "unet", "new_knob"])
        assert props["ui"]["label"] == "New knob"

    r = client.post("/api/config/check", json={"kind": "train", "config": {"model": {"unet": {"new_knob": 3}}}})
    assert r.json()["ok"] and r.json()["config"]["model"]["unet"]["new_knob"] == 3
    r = client.post("/api/config/check", json={"kind": "train", "config": {"model": {"unet": {"new_knob": 0}}}})
    assert r.json()["errors"][0]["loc"] == "config.model.unet.new_knob"


def test_check_warns_when_bf16_is_asked_and_every_worker_of_the_queue_emulates_it(client, app):
    """Issue 13 item 12: a non-blocking warning, from the facts the workers report in their
    heartbeat, in the engine's words; none where a worker runs bf16 natively, none for auto."""
    from backend import leases
    from ddpm.precision_rules import cpu_facts
    from worker.heartbeat import local_precision_facts

    def beat(name: str, flags: list[str], queues=("cpu",), device="cpu") -> None:
        with app.state.session_factory() as s:
            leases.heartbeat(s, name, queues=queues, device=device,
                             precision_facts={"cpu": asdict(cpu_facts(flags, "Test CPU"))})

    cfg = load_config(ROOT / "configs" / "presets" / "tiny_3d.json")
    raw = config_to_dict(cfg)
    raw["model"]["precision"] = "bf16"
    check = lambda body: client.post("/api/config/check", json=body).json()  # noqa: E731
    assert check({"kind": "train", "config": raw})["warnings"] == []  # no worker: nothing known
    beat("avx2-only", ["avx2", "fma"])
    out = check({"kind": "train", "config": raw})
    assert out["ok"] and out["warnings"][0]["loc"] == "config.model.precision"
    assert "the CPU (Test CPU) has no native bf16" in out["warnings"][0]["msg"], out["warnings"]
    raw["model"]["precision"] = "auto"
    assert check({"kind": "train", "config": raw})["warnings"] == []
    raw["model"]["precision"] = "bf16"
    beat("has-bf16", ["avx2", "avx512_bf16"])  # one worker of the queue runs it natively
    assert check({"kind": "train", "config": raw, "device": "cpu"})["warnings"] == []
    # the facts this machine's worker reports are the same shape
    facts = local_precision_facts()
    assert set(facts.get("cpu", {})) <= {"kind", "name", "native_bf16", "bf16_runs", "evidence"}
