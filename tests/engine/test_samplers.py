"""Samplers against an exact denoiser (Gaussian-mixture data) and with the real U-Net in 2D/3D."""
import pytest
import torch

from ddpm import UNet
from ddpm.diffusion.analytic import GaussianMixtureDenoiser
from ddpm.diffusion.gaussian import DDPM
from ddpm.diffusion.samplers import ancestral_step, ddim_step, logsnr_timesteps, sample, spaced_timesteps
from ddpm.diffusion.schedules import alphas_cumprod, make_betas

torch.set_num_threads(1)

N = 4000


def mixture_ddpm(schedule="cosine", T=250, objective="pred_noise", dims16=False):
    """DDPM whose 'network' is the exact posterior mean of a known mixture.

    1-D: means -0.5 / 0.4, stds 0.1 / 0.15, weights 0.3 / 0.7 (on a 1x1 image).
    16-D (1x4x4): three components of different spreads, as in bench/samplers.py."""
    ac = alphas_cumprod(make_betas(schedule, T))
    if dims16:
        g = torch.Generator().manual_seed(1)
        means = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64) * 1.2 - 0.6
        gm = GaussianMixtureDenoiser(ac, means, [0.04, 0.08, 0.15], [0.5, 0.3, 0.2], objective)
    else:
        means = torch.tensor([-0.5, 0.4], dtype=torch.float64).reshape(2, 1, 1, 1)
        gm = GaussianMixtureDenoiser(ac, means, [0.1, 0.15], [0.3, 0.7], objective)
    size = 4 if dims16 else 1
    return DDPM(image_size=size, channels=1, unet=gm, schedule=schedule, n_timestep=T, objective=objective), gm


def ks(x, y):
    """Two-sample Kolmogorov-Smirnov statistic."""
    x, y = x.flatten().double().sort().values, y.flatten().double().sort().values
    grid = torch.cat([x, y])
    fx = torch.searchsorted(x, grid, right=True).double() / len(x)
    fy = torch.searchsorted(y, grid, right=True).double() / len(y)
    return (fx - fy).abs().max().item()


def sliced_w1(x, y):
    x, y = x.double().flatten(1), y.double().flatten(1)
    proj = torch.randn(x.shape[1], 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    proj /= proj.norm(dim=0, keepdim=True)
    return ((x @ proj).sort(0).values - (y @ proj).sort(0).values).abs().mean().item()


KS_CRIT = 1.95 * (2 / N) ** 0.5  # two-sample KS at alpha = 0.001


def test_ddim_eta1_all_steps_matches_ancestral_ddpm_and_the_data():
    d, gm = mixture_ddpm()
    x_ddpm = sample(d, N, "ddpm", generator=torch.Generator().manual_seed(1))
    x_ddim = sample(d, N, "ddim", steps=d.num_timesteps, eta=1.0, generator=torch.Generator().manual_seed(2))
    data = gm.sample_data(N, torch.Generator().manual_seed(3))
    assert x_ddpm.shape == (N, 1, 1, 1)
    assert ks(x_ddpm, x_ddim) < KS_CRIT
    for x in (x_ddpm, x_ddim):
        assert ks(x, data) < KS_CRIT
        assert x.mean().item() == pytest.approx(0.13, abs=0.025)
        assert x.std().item() == pytest.approx(0.4346, abs=0.02)
        assert (x > 0).double().mean().item() == pytest.approx(0.7, abs=0.03)


def test_ddim_eta0_is_deterministic_and_different_from_eta1_paths():
    d, _ = mixture_ddpm()
    a = sample(d, 64, "ddim", steps=30, generator=torch.Generator().manual_seed(5))
    b = sample(d, 64, "ddim", steps=30, generator=torch.Generator().manual_seed(5))
    c = sample(d, 64, "ddim", steps=30, eta=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_respaced_ancestral_ddpm_keeps_the_distribution():
    d, gm = mixture_ddpm()
    x = sample(d, N, "ddpm", steps=50, generator=torch.Generator().manual_seed(6))
    assert ks(x, gm.sample_data(N, torch.Generator().manual_seed(3))) < KS_CRIT


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x0", "pred_v"])
def test_dpmpp2m_at_20_steps_reaches_the_data_and_beats_ddim_at_20(objective):
    d, gm = mixture_ddpm("linear", 1000, objective, dims16=True)
    data = gm.sample_data(N, torch.Generator().manual_seed(3))
    floor = sliced_w1(gm.sample_data(N, torch.Generator().manual_seed(4)), data)
    fast = sliced_w1(sample(d, N, "dpmpp2m", steps=20, generator=torch.Generator().manual_seed(5)), data)
    ddim20 = sliced_w1(sample(d, N, "ddim", steps=20, spacing="time", generator=torch.Generator().manual_seed(5)),
                       data)
    assert fast < 1.5 * floor, (fast, floor)
    assert fast < 0.5 * ddim20, (fast, ddim20)


def test_timestep_grids():
    assert spaced_timesteps(1000, 1000) == list(range(999, -1, -1))
    assert spaced_timesteps(1000, 2) == [999, 0] and spaced_timesteps(10, 1) == [9]
    for schedule in ("linear", "cosine"):
        ac = alphas_cumprod(make_betas(schedule, 1000))
        t = logsnr_timesteps(ac, 20)
        assert len(t) == 20 and t[0] == 999 and t[-1] == 0 and all(a > b for a, b in zip(t, t[1:]))
        lam = (0.5 * (ac.log() - (1 - ac).log()))[t]
        gaps = (lam[2:-1] - lam[1:-2])  # even in log-SNR away from the rounding at the ends
        assert gaps.max() < 1.5 * gaps.min()
    with pytest.raises(ValueError, match="steps"):
        spaced_timesteps(100, 101)


class Recorder(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.self_condition, self.calls = net, net.self_condition, []

    def forward(self, x, t, x_self_cond=None):
        out = self.net(x, t, x_self_cond)
        self.calls.append((x.clone(), t.clone(), None if x_self_cond is None else x_self_cond.clone(), out.clone()))
        return out


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp2m"])
def test_every_sampler_feeds_the_previous_x0_and_returns_the_shape_in_range(dims, sampler):
    torch.manual_seed(0)
    net = UNet(dims=dims, in_channels=2, image_size=8, dim=8, channel_mults=(1, 2), res_blocks=1,
               num_head_channels=8, self_condition=True)
    rec = Recorder(net)
    d = DDPM(image_size=8, channels=2, is_3d=dims == 3, unet=rec, n_timestep=100, objective="pred_v")
    seen = []
    x = d.sample(3, sampler=sampler, steps=4, eta=0.5, progress=lambda i, n: seen.append((i, n)))
    assert x.shape == (3, 2, *([8] * dims)) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(rec.calls) == 4
    assert torch.count_nonzero(rec.calls[0][2]) == 0
    for (xt, t, _, out), (_, _, cond, _) in zip(rec.calls, rec.calls[1:]):
        a, s = d.coefs(t, xt.dim())
        x0 = (a * xt - s * out).clamp(-1, 1)  # pred_v -> clipped x0 of the previous step
        torch.testing.assert_close(cond, x0, atol=1e-5, rtol=1e-5)
    assert d.training  # sampling restores the mode it found


def test_sampling_is_reproducible_with_a_generator_and_runs_under_bf16_autocast():
    torch.manual_seed(0)
    net = UNet(dims=2, in_channels=1, image_size=8, dim=8, channel_mults=(1, 2), res_blocks=1, num_head_channels=8)
    d = DDPM(image_size=8, unet=net, n_timestep=50)
    a = d.sample(2, "ddpm", steps=5, generator=torch.Generator().manual_seed(3))
    b = d.sample(2, "ddpm", steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    c = d.sample(2, "dpmpp2m", steps=5, generator=torch.Generator().manual_seed(3), autocast_dtype=torch.bfloat16)
    assert c.dtype == torch.float32 and torch.isfinite(c).all() and c.abs().max() <= 1
    d.to(torch.bfloat16)  # a model stored in bf16 samples too, with its schedule still float64
    e = d.sample(2, "ddim", steps=5, generator=torch.Generator().manual_seed(3))
    assert e.dtype == torch.float32 and torch.isfinite(e).all() and d.alphas_cumprod.dtype == torch.float64


def test_bad_sampler_arguments_name_the_field():
    d, _ = mixture_ddpm(T=50)
    with pytest.raises(ValueError, match="sampler"):
        d.sample(1, sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        d.sample(1, sampler="ddim", steps=51)
    with pytest.raises(ValueError, match="eta"):
        d.sample(1, sampler="ddim", eta=-1)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_dpmpp2m_converges_at_second_order_on_the_probability_flow_ode(schedule):
    # same initial noise; reference = DDIM (eta 0, the first-order solver of the same ODE) over
    # all 1000 steps. A first-order solver halves its error when the steps double; 2M quarters it.
    d, _ = mixture_ddpm(schedule, 1000, "pred_noise", dims16=True)

    def run(sampler, steps, spacing):
        return sample(d, 500, sampler, steps=steps, spacing=spacing, clip_x0=False,
                      generator=torch.Generator().manual_seed(5))

    ref = run("ddim", 1000, "time")
    err = {(s, k): (run(s, k, "logsnr") - ref).abs().mean().item() for s in ("dpmpp2m", "ddim") for k in (10, 20)}
    assert err["dpmpp2m", 10] / err["dpmpp2m", 20] > 3.0, err
    assert err["ddim", 10] / err["ddim", 20] < 2.6, err
    assert err["dpmpp2m", 20] < 0.4 * err["ddim", 20], err


def test_one_ancestral_and_one_ddim_eta1_step_are_the_bayes_posterior():
    # q(x_s | x_t, x0) from Bayes' rule on q(x_s | x0) and q(x_t | x_s), derived independently
    torch.manual_seed(0)
    ab_t, ab_s = 0.3, 0.8
    x0, xt = torch.rand(1000) * 2 - 1, torch.randn(1000)
    eps = (xt - ab_t ** 0.5 * x0) / (1 - ab_t) ** 0.5
    a_ts, v_ts = (ab_t / ab_s) ** 0.5, 1 - ab_t / ab_s
    var = 1 / (1 / (1 - ab_s) + a_ts ** 2 / v_ts)
    mean = var * (ab_s ** 0.5 * x0 / (1 - ab_s) + a_ts * xt / v_ts)
    zero, one = torch.zeros(1000), torch.ones(1000)
    for step in (lambda z: ancestral_step(xt, x0, ab_t, ab_s, z), lambda z: ddim_step(eps, x0, ab_t, ab_s, 1.0, z)):
        torch.testing.assert_close(step(zero), mean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(step(one) - step(zero), torch.full((1000,), var ** 0.5), atol=1e-5, rtol=1e-5)
