"""Beta schedules against their closed forms, and how DDPM keeps them (float64, not saved)."""
import math

import pytest
import torch

from ddpm.diffusion.gaussian import DDPM
from ddpm.diffusion.schedules import alphas_cumprod, make_betas

torch.set_num_threads(1)


class Zero(torch.nn.Module):
    def forward(self, x, t, x_self_cond=None):
        return torch.zeros_like(x)


def test_linear_is_evenly_spaced_between_the_ends():
    b = make_betas("linear", 500, 1e-4, 0.02)
    assert b.dtype == torch.float64 and b.shape == (500,)
    for i in (0, 1, 250, 499):
        assert b[i].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * i / 499, rel=1e-12)


def test_quadratic_is_the_square_of_evenly_spaced_roots():
    b = make_betas("quadratic", 100, 1e-4, 0.02)
    for i in (0, 37, 99):
        root = math.sqrt(1e-4) + (math.sqrt(0.02) - math.sqrt(1e-4)) * i / 99
        assert b[i].item() == pytest.approx(root ** 2, rel=1e-12)


def test_sigmoid_follows_the_logistic_between_the_ends():
    b = make_betas("sigmoid", 200, 1e-4, 0.02)
    for i in (0, 100, 199):
        z = -6 + 12 * i / 199
        assert b[i].item() == pytest.approx(1e-4 + (0.02 - 1e-4) / (1 + math.exp(-z)), rel=1e-12)
    assert torch.all(b[1:] > b[:-1])


def test_cosine_alpha_bar_follows_the_squared_cosine():
    T, s = 1000, 8e-3
    ac = alphas_cumprod(make_betas("cosine", T))

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0, 10, 500, 900):
        assert ac[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid", "quadratic"])
def test_betas_stay_in_the_open_interval_and_alpha_bar_decreases(schedule):
    b = make_betas(schedule, 1000)
    assert torch.all(b > 0) and torch.all(b <= 0.999)
    ac = alphas_cumprod(b)
    assert torch.all(ac[1:] < ac[:-1]) and ac[-1] > 0


def test_cosine_end_is_clipped_to_0_999():
    # unclipped, the last cosine beta is 1 (alpha_bar reaches 0 and the last step is singular)
    assert make_betas("cosine", 1000)[-1].item() == pytest.approx(0.999)


@pytest.mark.parametrize("kwargs, field", [
    (dict(schedule="cosin"), "schedule"),
    (dict(schedule="linear", n_timestep=1), "n_timestep"),
    (dict(schedule="linear", linear_start=0.02, linear_end=1e-4), "linear_start"),
    (dict(schedule="quadratic", linear_start=0.0), "linear_start"),
])
def test_bad_schedule_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make_betas(**kwargs)


def test_ddpm_keeps_the_schedule_in_float64_even_when_cast_and_does_not_save_it():
    d = DDPM(image_size=4, unet=Zero(), schedule="linear", n_timestep=100)
    assert d.alphas_cumprod.dtype == torch.float64
    d = d.to(torch.bfloat16)
    assert d.betas.dtype == torch.float64
    assert torch.equal(d.betas, make_betas("linear", 100))
    assert d.state_dict() == {}  # derived from the config, never a source of truth in checkpoints
    assert d.num_timesteps == 100
