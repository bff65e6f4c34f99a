"""DDPM: the U-Net plus the noise schedule; training loss and the entry point to sampling.

The schedule lives in float64 buffers (derived from the config, so not saved in state_dict);
each use gathers the rows it needs and casts them to float32. ``.to(dtype)`` / ``.half()`` on
the module would normally cast buffers too; ``_apply`` rebuilds them in float64 afterwards so
a bf16 model still computes its coefficients exactly.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import torch
from torch import nn

from ddpm.config import DEFAULT_SAMPLER
from ddpm.device import DeviceLike, resolve_device

from . import objectives as obj
from .schedules import alphas_cumprod, make_betas

log = logging.getLogger(__name__)

def _bcast(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape(v.shape[0], *([1] * (ndim - 1)))


class DDPM(nn.Module):
    """Gaussian diffusion around a denoiser with the U-Net call signature ``unet(x, t, x_self_cond)``."""

    def __init__(self, image_size: int = 32, channels: int = 1, device: DeviceLike = "cpu",
                 is_3d: bool = False, unet: Optional[nn.Module] = None, schedule: str = "linear",
                 n_timestep: int = 1000, linear_start: float = 1e-4, linear_end: float = 0.02,
                 objective: str = "pred_noise", loss_type: str = "l2",
                 min_snr_gamma: Optional[float] = None, self_condition: bool = False,
                 sampling_timesteps: Optional[int] = None, **unet_kwargs: Any) -> None:
        super().__init__()
        dev = resolve_device(device)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.dims = 3 if is_3d else 2
        self.objective = obj.check_objective(objective)
        self.loss_type = obj.check_loss_type(loss_type)
        if min_snr_gamma is not None and not min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma: must be > 0 or None, got {min_snr_gamma!r}")
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        if unet is None:
            from ddpm.nn import UNet  # lazy: keeps this module importable on its own
            kwargs = dict(dim=32, channel_mults=(1, 2, 4), res_blocks=2, attn_res=None)
            kwargs.update(unet_kwargs)
            unet = UNet(dims=self.dims, in_channels=self.channels, image_size=self.image_size,
                        self_condition=self_condition, **kwargs)
        elif unet_kwargs:
            raise TypeError(f"unet keyword arguments {sorted(unet_kwargs)} given together with a unet")
        self.unet = unet
        self.self_condition = bool(self_condition or getattr(unet, "self_condition", False))

        self._betas_master = make_betas(schedule, n_timestep, linear_start, linear_end)
        self.schedule = schedule
        self.num_timesteps = int(self._betas_master.shape[0])
        if sampling_timesteps is not None and not 1 <= sampling_timesteps <= self.num_timesteps:
            raise ValueError(f"sampling_timesteps: must be in 1..{self.num_timesteps}, got {sampling_timesteps}")
        # default step count of the ancestral sampler (config beta_schedule.test.n_timestep)
        self.sampling_timesteps = sampling_timesteps or self.num_timesteps
        self._register_schedule(torch.device("cpu"))
        signal_left = float(self.sqrt_alphas_cumprod[-1])
        if signal_left > 0.1:
            # samplers start from pure noise; if x_T still holds this much of x0, the deterministic
            # ones (ddim, dpmpp2m) cannot correct the mismatch and give washed-out samples
            log.warning("the %s schedule with n_timestep=%d ends with sqrt(alpha_bar_T)=%.2f of the data "
                        "left in x_T (want < 0.1): use more timesteps, a larger linear_end or 'cosine'",
                        schedule, self.num_timesteps, signal_left)
        self.to(dev)

    # ---- schedule buffers -------------------------------------------------------------------
    def _register_schedule(self, device: torch.device) -> None:
        betas = self._betas_master.to(device)
        ac = alphas_cumprod(betas)
        for name, value in (("betas", betas), ("alphas_cumprod", ac),
                            ("sqrt_alphas_cumprod", ac.sqrt()),
                            ("sqrt_one_minus_alphas_cumprod", (1 - ac).sqrt()),
                            ("snr", ac / (1 - ac))):
            self.register_buffer(name, value, persistent=False)

    def _apply(self, fn: Callable, recurse: bool = True) -> "DDPM":
        super()._apply(fn, recurse)
        # whatever fn did to the dtype, the schedule stays float64 on the new device
        self._register_schedule(self.betas.device)
        return self

    @property
    def device(self) -> torch.device:
        return self.betas.device

    @property
    def model_dtype(self) -> torch.dtype:
        p = next(self.unet.parameters(), None)
        return p.dtype if p is not None and p.is_floating_point() else torch.float32

    def coefs(self, t: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) in float32, shaped (B, 1, ...) for broadcasting."""
        t = t.to(self.device).long()
        a = _bcast(self.sqrt_alphas_cumprod[t].float(), ndim)
        s = _bcast(self.sqrt_one_minus_alphas_cumprod[t].float(), ndim)
        return a, s

    # ---- construction from a config -----------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, device: DeviceLike = None) -> "DDPM":
        """Build from a TrainConfig (ddpm.config) on ``device``; None: the config's ``gpu``
        (``ddpm.device.resolve_device``: the CPU, with a warning, where CUDA is missing)."""
        from ddpm.nn import UNet

        if device is None:
            device = cfg.gpu
        m, sched = cfg.model, cfg.model.beta_schedule
        test = sched.test.n_timestep if sched.test is not None else None
        return cls(image_size=cfg.dataset.image_size, channels=cfg.dataset.image_channels, device=device,
                   is_3d=cfg.is_3d, unet=UNet.from_config(cfg), schedule=sched.train.schedule,
                   n_timestep=sched.train.n_timestep, linear_start=sched.train.linear_start,
                   linear_end=sched.train.linear_end, objective=m.objective, loss_type=m.loss_type,
                   min_snr_gamma=m.min_snr_gamma, self_condition=m.unet.self_condition,
                   sampling_timesteps=test)

    # ---- forward process and training loss ----------------------------------------------------
    def sample_timesteps(self, b: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Uniform timesteps in [0, num_timesteps), LongTensor (b,) on the model's device."""
        gen_dev = generator.device if generator is not None else self.device
        return torch.randint(0, self.num_timesteps, (b,), generator=generator, device=gen_dev).to(self.device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise."""
        if noise is None:
            noise = torch.randn_like(x0)
        a, s = self.coefs(t, x0.dim())
        return a * x0 + s * noise

    def _net(self, x_t: torch.Tensor, t: torch.Tensor, x_self_cond: Optional[torch.Tensor]) -> torch.Tensor:
        if self.self_condition:
            if x_self_cond is None:
                x_self_cond = torch.zeros_like(x_t)
            return self.unet(x_t, t, x_self_cond)
        return self.unet(x_t, t)

    def model_predictions(self, x_t: torch.Tensor, t: torch.Tensor, x_self_cond: Optional[torch.Tensor] = None,
                          clip_x0: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(pred_noise, pred_x0) in float32 from one network call; x0 clamped to [-1, 1] when asked."""
        out = self._net(x_t, t, x_self_cond).float()
        a, s = self.coefs(t, x_t.dim())
        return obj.to_eps_x0(self.objective, out, x_t.float(), a, s, clip_x0)

    def draw_loss_inputs(self, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The random inputs of ``p_losses`` for a batch of ``shape``, drawn on the model's device
        in one fixed order: timesteps, noise, and (self-conditioning) the mask. The training loop
        draws them for the global batch on every process and slices its share, so the random
        numbers of sample i do not depend on the number of processes."""
        b = shape[0]
        inputs = {"t": torch.randint(0, self.num_timesteps, (b,), device=self.device),
                  "noise": torch.randn(shape, device=self.device)}
        if self.self_condition:
            inputs["self_cond_mask"] = torch.rand(b, device=self.device) < 0.5
        return inputs

    def p_losses(self, x0: torch.Tensor, t: torch.Tensor, noise: Optional[torch.Tensor] = None,
                 reduction: str = "mean", self_cond_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Training loss at timesteps t (x0 in [-1, 1]). reduction "mean": scalar; "none": (B,).

        Self-conditioning (training mode, the samples where ``self_cond_mask`` is True, a random
        half when it is not given): a first x0 estimate is made without gradients from a zero
        self-condition, detached, and fed back as the condition of the prediction the loss is
        taken on. The other samples see zeros, as the first sampling step does. A per-sample mask
        rather than a coin flip per batch: every step runs the same operations and uses every
        weight, with no host sync (what DDP and CUDA graphs need).
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction: {reduction!r} is not allowed; allowed values: mean, none")
        if x0.dim() != self.dims + 2:
            raise ValueError(f"x0 must be ({'B, C, D, H, W' if self.dims == 3 else 'B, C, H, W'}), "
                             f"got shape {tuple(x0.shape)}")
        t = t.to(x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        x_self_cond = None
        if self.self_condition:
            x_self_cond = torch.zeros_like(x_t)
            if self.training:
                if self_cond_mask is None:
                    self_cond_mask = torch.rand(x_t.shape[0], device=x_t.device) < 0.5
                with torch.no_grad():
                    _, first_x0 = self.model_predictions(x_t, t, x_self_cond, clip_x0=True)
                keep = _bcast(self_cond_mask.to(x_t.device), x_t.dim())
                x_self_cond = torch.where(keep, first_x0.detach().to(x_t.dtype), x_self_cond)
        out = self._net(x_t, t, x_self_cond)
        a, s = self.coefs(t, x0.dim())
        target = obj.target_for(self.objective, x0.float(), noise.float(), a, s)
        loss = obj.elementwise_loss(self.loss_type, out, target)
        loss = loss.reshape(loss.shape[0], -1).mean(dim=1)
        loss = loss * obj.min_snr_weight(self.objective, self.snr[t.long()], self.min_snr_gamma)
        return loss.mean() if reduction == "mean" else loss

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Loss at random timesteps (so DDP / compile wrappers can call the module directly)."""
        return self.p_losses(x0, self.sample_timesteps(x0.shape[0]))

    # ---- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, sampler: str = DEFAULT_SAMPLER, steps: Optional[int] = None, eta: float = 0.0,
               generator: Optional[torch.Generator] = None, clip_x0: bool = True,
               progress: Optional[Callable[[int, int], None]] = None,
               autocast_dtype: Optional[torch.dtype] = None, spacing: Optional[str] = None) -> torch.Tensor:
        """n samples (n, C, *spatial) in [-1, 1], float32, on the model's device.

        See ``samplers.sample`` for the defaults of ``steps`` and ``spacing`` ("time" | "logsnr")."""
        from .samplers import sample as run_sampler

        return run_sampler(self, n, sampler=sampler, steps=steps, eta=eta, generator=generator,
                           clip_x0=clip_x0, progress=progress, autocast_dtype=autocast_dtype,
                           spacing=spacing)
