"""The names of the seed note's Testing section work as it shows (on CPU here; CUDA when present)."""
import logging

import pytest
import torch

torch.set_num_threads(1)


def test_the_seed_snippet_gives_a_finite_scalar_loss():
    from ddpm import DDPM

    ddpm = DDPM(image_size=32, channels=1, device="cpu", is_3d=True)
    assert isinstance(ddpm, torch.nn.Module)
    assert (ddpm.dims, ddpm.channels, ddpm.image_size, ddpm.num_timesteps) == (3, 1, 32, 1000)
    unet = ddpm.unet
    # the documented default model: base 32, mults 1,2,4, attention at the lowest level (side 8)
    assert (unet.dims, unet.in_channels, unet.attn_res) == (3, 1, [8])
    batch_size = 2
    x = torch.randn(batch_size, 1, 32, 32, 32)
    t = ddpm.sample_timesteps(batch_size)
    assert t.dtype == torch.long and t.shape == (2,) and 0 <= int(t.min()) and int(t.max()) < 1000
    loss = ddpm.p_losses(x, t)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()  # trainable end to end
    assert unet.init_conv.weight.grad is not None


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp2m"])
def test_sample_returns_the_right_shape_in_range(sampler):
    from ddpm import DDPM

    ddpm = DDPM(image_size=16, channels=1, device="cpu", is_3d=True, dim=8, num_head_channels=8)
    x = ddpm.sample(2, sampler=sampler, steps=3)
    assert x.shape == (2, 1, 16, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and torch.isfinite(x).all()


def test_2d_default_and_package_exports():
    import ddpm

    assert {"DDPM", "UNet", "load_config"} <= set(ddpm.__all__)
    model = ddpm.DDPM(image_size=16, channels=3, dim=8, num_head_channels=8)
    assert model.dims == 2 and isinstance(model.unet, ddpm.UNet)
    assert model.sample(1, sampler="ddim", steps=2).shape == (1, 3, 16, 16)
    assert ddpm.load_config({"is_3d": True}).dims == 3


def test_a_schedule_that_does_not_reach_noise_is_warned_about(caplog):
    from ddpm import DDPM

    with caplog.at_level(logging.WARNING, logger="ddpm.diffusion.gaussian"):
        DDPM(image_size=8, dim=8, channel_mults=(1, 2), num_head_channels=8, n_timestep=100)
    assert "sqrt(alpha_bar_T)=0.6" in caplog.text


def test_top_level_names_the_readme_uses():
    import ddpm
    from ddpm.export import load_pretrained

    assert set(ddpm.__all__) == {"DDPM", "UNet", "load_config", "load_pretrained"}
    assert ddpm.load_pretrained is load_pretrained
