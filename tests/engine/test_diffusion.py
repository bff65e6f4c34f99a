"""Forward process, objectives, losses, min-SNR weighting and self-conditioning in training."""
import pytest
import torch
import torch.nn.functional as F

from ddpm import UNet
from ddpm.config import load_config
from ddpm.diffusion import objectives as obj
from ddpm.diffusion.gaussian import DDPM

torch.set_num_threads(1)


class Fixed(torch.nn.Module):
    """A 'network' whose output is set from outside."""

    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x, t, x_self_cond=None):
        return self.out if self.out is not None else torch.zeros_like(x)


class Recorder(torch.nn.Module):
    """Wraps a real network and records every call (inputs and output)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.self_condition, self.calls = net, net.self_condition, []

    def forward(self, x, t, x_self_cond=None):
        out = self.net(x, t, x_self_cond)
        self.calls.append(dict(x=x.detach().clone(), t=t.clone(), cond=x_self_cond,
                               grad=torch.is_grad_enabled(), out=out.detach().clone()))
        return out


def tiny_unet(dims=2, size=8, self_condition=False):
    return UNet(dims=dims, in_channels=1, image_size=size, dim=8, channel_mults=(1, 2), res_blocks=1,
                num_head_channels=8, self_condition=self_condition)


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_q_sample_has_the_marginal_mean_and_variance(t):
    d = DDPM(image_size=16, unet=Fixed())
    torch.manual_seed(0)
    x0 = torch.full((64, 1, 16, 16), 0.5)
    xt = d.q_sample(x0, torch.full((64,), t))
    ac = d.alphas_cumprod[t].item()
    assert xt.mean().item() == pytest.approx(ac ** 0.5 * 0.5, abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ac, rel=0.03, abs=2e-4)


def test_conversions_round_trip():
    torch.manual_seed(0)
    d = DDPM(image_size=8, unet=Fixed(), schedule="cosine")
    x0, eps = torch.rand(6, 1, 8, 8) * 2 - 1, torch.randn(6, 1, 8, 8)
    t = torch.tensor([0, 1, 200, 500, 900, 999])
    a, s = d.coefs(t, 4)
    xt = a * x0 + s * eps
    v = obj.v_from(x0, eps, a, s)
    torch.testing.assert_close(obj.x0_from_v(xt, v, a, s), x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(obj.eps_from_v(xt, v, a, s), eps, atol=1e-4, rtol=0)
    torch.testing.assert_close(obj.eps_from_x0(xt, x0, a, s), eps, atol=1e-3, rtol=0)
    torch.testing.assert_close(obj.x0_from_eps(xt[:5], eps[:5], a[:5], s[:5]), x0[:5], atol=1e-3, rtol=0)
    for objective, out in (("pred_noise", eps), ("pred_x0", x0), ("pred_v", v)):
        e, x = obj.to_eps_x0(objective, out, xt, a, s, clip_x0=False)
        torch.testing.assert_close(x[:5], x0[:5], atol=1e-3, rtol=0)
        torch.testing.assert_close(e[1:], eps[1:], atol=2e-3, rtol=0)


def test_model_predictions_clip_x0_and_keep_eps_consistent():
    d = DDPM(image_size=4, unet=Fixed())
    xt, t = torch.full((1, 1, 4, 4), 3.0), torch.tensor([10])
    d.unet.out = torch.zeros_like(xt)  # eps = 0 -> x0 = xt / a > 1
    eps, x0 = d.model_predictions(xt, t, clip_x0=True)
    assert x0.max().item() == 1.0
    a, s = d.coefs(t, 4)
    torch.testing.assert_close(a * x0 + s * eps, xt)  # the pair still explains x_t


@pytest.mark.parametrize("loss_type, fn", [
    ("l2", lambda p, y: (p - y) ** 2), ("l1", lambda p, y: (p - y).abs()),
    ("huber", lambda p, y: F.smooth_l1_loss(p, y, reduction="none"))])
@pytest.mark.parametrize("objective", ["pred_noise", "pred_x0", "pred_v"])
def test_each_loss_against_its_definition(loss_type, fn, objective):
    torch.manual_seed(1)
    d = DDPM(image_size=4, unet=Fixed(), objective=objective, loss_type=loss_type)
    x0, noise = torch.rand(3, 1, 4, 4) * 2 - 1, 2 * torch.randn(3, 1, 4, 4)
    t = torch.tensor([5, 400, 990])
    d.unet.out = torch.randn(3, 1, 4, 4)
    a, s = d.coefs(t, 4)
    target = {"pred_noise": noise, "pred_x0": x0, "pred_v": a * noise - s * x0}[objective]
    want = fn(d.unet.out, target).flatten(1).mean(1)
    got = d.p_losses(x0, t, noise, reduction="none")
    assert got.shape == (3,)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(d.p_losses(x0, t, noise), want.mean())


def test_min_snr_weights_have_their_values():
    snr = torch.tensor([0.01, 1.0, 5.0, 100.0], dtype=torch.float64)
    torch.testing.assert_close(obj.min_snr_weight("pred_x0", snr, 5.0), torch.tensor([0.01, 1.0, 5.0, 5.0]))
    torch.testing.assert_close(obj.min_snr_weight("pred_noise", snr, 5.0), torch.tensor([1.0, 1.0, 1.0, 0.05]))
    torch.testing.assert_close(obj.min_snr_weight("pred_v", snr, 5.0),
                               torch.tensor([0.01 / 1.01, 0.5, 5 / 6, 5 / 101]))
    torch.testing.assert_close(obj.min_snr_weight("pred_v", snr, None), torch.ones(4))


def test_min_snr_gives_every_objective_the_same_effective_x0_weight():
    # one and the same (imperfect) x0 estimate, expressed as each objective's output, must give
    # the same weighted l2 loss min(snr, gamma) * |x0 - x0_hat|^2 whatever the objective
    torch.manual_seed(2)
    x0, noise = torch.rand(4, 1, 4, 4) * 2 - 1, torch.randn(4, 1, 4, 4)
    t = torch.tensor([3, 100, 500, 950])
    x0_hat = x0 + 0.1 * torch.randn_like(x0)
    losses = {}
    for objective in ("pred_noise", "pred_x0", "pred_v"):
        d = DDPM(image_size=4, unet=Fixed(), objective=objective, min_snr_gamma=5.0)
        a, s = d.coefs(t, 4)
        xt = d.q_sample(x0, t, noise)
        eps_hat = obj.eps_from_x0(xt, x0_hat, a, s)
        d.unet.out = {"pred_noise": eps_hat, "pred_x0": x0_hat, "pred_v": obj.v_from(x0_hat, eps_hat, a, s)}[objective]
        losses[objective] = d.p_losses(x0, t, noise, reduction="none")
    snr = d.snr[t].float()
    want = torch.minimum(snr, torch.tensor(5.0)) * ((x0 - x0_hat) ** 2).flatten(1).mean(1)
    for objective, got in losses.items():
        torch.testing.assert_close(got, want, rtol=2e-3, atol=1e-6, msg=objective)


def test_self_conditioning_feeds_back_a_detached_x0_to_the_masked_samples():
    torch.manual_seed(3)
    rec = Recorder(tiny_unet(self_condition=True))
    d = DDPM(image_size=8, unet=rec)
    assert d.self_condition
    d.train()
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    fed = 0
    for i in range(16):
        rec.calls.clear()
        # every training call runs the same two network calls (no branch: DDP and CUDA graphs need
        # that); the mask picks the samples whose condition is the fed-back estimate
        mask = torch.tensor([True, False]) if i == 0 else None
        loss = d.p_losses(x0, d.sample_timesteps(2), self_cond_mask=mask)
        loss.backward()
        assert len(rec.calls) == 2
        first, last = rec.calls
        assert not first["grad"] and torch.count_nonzero(first["cond"]) == 0
        assert last["grad"] and not last["cond"].requires_grad
        a, s = d.coefs(first["t"], 4)
        estimate = ((first["x"] - s * first["out"]) / a).clamp(-1, 1)  # pred_noise -> clipped x0
        for b in range(2):
            if torch.count_nonzero(last["cond"][b]) == 0:
                assert not (i == 0 and b == 0)
            else:
                torch.testing.assert_close(last["cond"][b], estimate[b], atol=1e-5, rtol=1e-5)
                assert not (i == 0 and b == 1)
                fed += 1
    assert 8 <= fed <= 24, fed  # about half of the 32 samples when the mask is drawn
    # evaluation mode: a single call with zeros, never the extra forward
    d.eval()
    rec.calls.clear()
    d.p_losses(x0, d.sample_timesteps(2))
    assert len(rec.calls) == 1 and torch.count_nonzero(rec.calls[0]["cond"]) == 0


@pytest.mark.parametrize("dims", [2, 3])
def test_p_losses_under_bf16_autocast_is_a_finite_float32(dims):
    torch.manual_seed(4)
    d = DDPM(image_size=8, is_3d=dims == 3, unet=tiny_unet(dims, 8, self_condition=True))
    x0 = torch.rand(2, 1, *([8] * dims)) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = d.p_losses(x0, d.sample_timesteps(2))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in d.parameters() if p.grad is not None)


def test_from_config_reads_schedule_objective_loss_and_self_condition():
    cfg = load_config({
        "is_3d": True,
        "model": {"unet": {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "num_head_channels": 8,
                           "self_condition": True},
                  "beta_schedule": {"train": {"schedule": "cosine", "n_timestep": 300},
                                    "test": {"schedule": "cosine", "n_timestep": 100}},
                  "objective": "pred_v", "loss_type": "huber", "min_snr_gamma": 5},
        "dataset": {"name": "volume3d", "image_size": 8, "image_channels": 2},
    })
    d = DDPM.from_config(cfg, "cpu")
    assert (d.dims, d.channels, d.image_size, d.num_timesteps) == (3, 2, 8, 300)
    assert (d.objective, d.loss_type, d.min_snr_gamma, d.self_condition) == ("pred_v", "huber", 5.0, True)
    assert d.sampling_timesteps == 100 and d.schedule == "cosine"
    assert isinstance(d.unet, UNet) and d.device == torch.device("cpu")
    loss = d.p_losses(torch.zeros(1, 2, 8, 8, 8), d.sample_timesteps(1))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("kwargs, field", [
    (dict(objective="pred_eps"), "objective"), (dict(loss_type="mse"), "loss_type"),
    (dict(min_snr_gamma=0), "min_snr_gamma"), (dict(schedule="cos"), "schedule")])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DDPM(image_size=4, unet=Fixed(), **kwargs)


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        assert DDPM(image_size=4, unet=Fixed(), device="cuda").device.type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            DDPM(image_size=4, unet=Fixed(), device="cuda")


def test_wrong_input_rank_is_a_clear_error():
    d = DDPM(image_size=4, unet=Fixed(), is_3d=True)
    with pytest.raises(ValueError, match="B, C, D, H, W"):
        d.p_losses(torch.zeros(2, 1, 4, 4), d.sample_timesteps(2))
