"""ddpm.model_size: the torch-free parameter count is the real U-Net's, over many shapes, and the
memory estimate's activation part is close to what autograd really keeps."""
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm.config import ConfigError, load_config
from ddpm.model_size import activation_elements, count_unet_parameters, estimate_train_memory_bytes
from ddpm.nn.unet import UNet

ROOT = Path(__file__).resolve().parents[2]


def _random_configs(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        is_3d = rng.random() < 0.5
        mults = [rng.choice([1, 2, 3, 4]) for _ in range(rng.randint(1, 4))]
        size = rng.choice([8, 16, 32]) * (2 if not is_3d and rng.random() < 0.5 else 1)
        sides = [size // 2**i for i in range(len(mults))]
        attn = rng.choice([None, [], rng.sample(sides, rng.randint(1, len(sides)))])
        raw = {"is_3d": is_3d, "dataset": {"image_size": size, "image_channels": rng.randint(1, 3)},
               "model": {"unet": {"dim": rng.choice([8, 16, 24, 32]), "channel_mults": mults,
                                  "res_blocks": rng.randint(1, 3), "attn_res": attn,
                                  "num_head_channels": 8, "self_condition": rng.random() < 0.5,
                                  "linear_attn": rng.random() < 0.5}}}
        try:
            out.append(load_config(raw))
        except ConfigError:
            continue  # a shape the schema refuses has no U-Net to compare with
    return out


@pytest.mark.parametrize("cfg", _random_configs(60), ids=lambda c: (
    f"{c.dims}d-s{c.dataset.image_size}-c{c.dataset.image_channels}-d{c.model.unet.dim}-"
    f"m{''.join(map(str, c.model.unet.channel_mults))}-r{c.model.unet.res_blocks}-"
    f"a{c.model.unet.attn_res}-sc{int(c.model.unet.self_condition)}-la{int(c.model.unet.linear_attn)}"))
def test_parameter_count_is_the_real_unets(cfg):
    with torch.device("meta"):  # shapes only: no memory, no init time
        real = sum(p.numel() for p in UNet.from_config(cfg).parameters())
    assert count_unet_parameters(cfg) == real


@pytest.mark.parametrize("name", ["config_2d.json", "config_3d.json"])
def test_parameter_count_of_the_seed_configs(name):
    cfg = load_config(ROOT / "configs" / name)
    with torch.device("meta"):
        assert count_unet_parameters(cfg) == sum(p.numel() for p in UNet.from_config(cfg).parameters())


def _kept_bytes(cfg) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of one forward pass."""
    torch.manual_seed(0)
    net = UNet.from_config(cfg)
    b, c = cfg.dataset.batch_size, cfg.dataset.image_channels
    x = torch.randn((b, c) + (cfg.dataset.image_size,) * cfg.dims)
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.model.precision == "bf16"):
            net(x, torch.randint(0, 100, (b,)))
    return sum(n for ptr, n in kept.items() if ptr not in params)


@pytest.mark.parametrize("raw", [
    {"is_3d": True, "dataset": {"image_size": 16, "batch_size": 2}, "model": {"unet": {"attn_res": [4]}}},
    {"is_3d": True, "dataset": {"image_size": 16, "batch_size": 2},
     "model": {"precision": "bf16", "unet": {"attn_res": [8], "num_head_channels": 16}}},
    {"dataset": {"image_size": 32, "batch_size": 4}, "model": {"unet": {"dim": 16, "linear_attn": True,
                                                                        "num_head_channels": 16}}},
])
def test_activation_estimate_is_close_to_what_autograd_keeps(raw):
    cfg = load_config(raw)
    per = 2 if cfg.model.precision == "bf16" else 4
    estimate = activation_elements(cfg) * cfg.dataset.batch_size * per
    if per == 2:  # autocast keeps its bf16 copies of the weights too; the estimate counts them
        estimate += 2 * count_unet_parameters(cfg)
    assert 0.75 < estimate / _kept_bytes(cfg) < 1.3


def test_memory_estimate_grows_with_what_costs_memory():
    base = {"is_3d": True, "dataset": {"image_size": 32, "batch_size": 2}}
    plain = estimate_train_memory_bytes(load_config(base))
    bigger_batch = estimate_train_memory_bytes(load_config({**base, "dataset": {"image_size": 32, "batch_size": 8}}))
    ckpt = estimate_train_memory_bytes(load_config({**base, "model": {"unet": {"checkpointing": True}}}))
    bf16 = estimate_train_memory_bytes(load_config({**base, "model": {"precision": "bf16"}}))
    assert bigger_batch > 2.5 * plain and ckpt < 0.75 * plain and bf16 < plain


def test_model_size_does_not_import_torch():
    code = "import sys, ddpm.model_size; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
