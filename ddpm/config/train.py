"""The schema of a training config (pydantic), torch-free so the API can validate jobs.

``ddpm.config`` is the front door (it re-exports these names, registers every config kind and
loads config files); the fine-tune schema (``ddpm.config.finetune``) reuses the models and
fields defined here.

Every field carries its description and its UI metadata (``json_schema_extra["ui"]``: label,
group, widget, unit, advanced); the README's config table (scripts/config_reference.py), the
API's ``GET /api/config/schema`` and the New-job form are generated from them
(``ddpm.config.fields``). A key added here appears in all three with no other edit.

The seed note's ``config_3d.json`` loads unchanged. Keys mean what the seed says they mean:
``attn_res`` is the feature-map side (or sides) where full attention runs, ``num_head_channels``
is channels per attention head, ``res_blocks`` is residual blocks per level.

Where the seed's framework had keys that did not do what they said, we define them honestly:
``beta_schedule.test`` cannot change the noise levels a model was trained on, so only its
``n_timestep`` is used (the default number of ancestral sampling steps, respaced on the training
schedule); its other fields, when given, must match ``train``.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ddpm.config.errors import ConfigError
from ddpm.config.rules import unet_shape_problems

__all__ = ["BetaScheduleConfig", "DatasetConfig", "DEFAULT_SAMPLER", "IntensityConfig", "ModelConfig",
           "Precision", "SamplingScheduleConfig", "Sampler", "ScheduleConfig", "TrainConfig", "UI_GROUPS",
           "UNetConfig", "StrictModel", "UiGroup", "WIDGETS", "Widget", "config_field"]

Schedule = Literal["linear", "cosine", "sigmoid", "quadratic"]
# What a config may ask for; "auto" is resolved on the training device (ddpm.precision).
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class Sampler(StrEnum):
    """The samplers the engine has; the REST API, the CLI and the UI take their names from here."""

    ddpm = "ddpm"
    ddim = "ddim"
    dpmpp2m = "dpmpp2m"


# The fast sampler the README recommends (DPM-Solver++ 2M at 20-25 steps): every default sampler.
DEFAULT_SAMPLER = Sampler.dpmpp2m


class UiGroup(BaseModel):
    """A section of the config form."""

    id: str
    title: str


UI_GROUPS: tuple[UiGroup, ...] = (
    UiGroup(id="general", title="General"),
    UiGroup(id="model", title="Model (U-Net)"),
    UiGroup(id="diffusion", title="Diffusion"),
    UiGroup(id="training", title="Training"),
    UiGroup(id="data", title="Data"),
)

# How the form edits a value: "sides" = list of feature-map sides (null = the lowest level,
# [] = none); "pair" = two numbers or null; "optional_*" = a number or null (off / the parent
# object absent).
Widget = Literal["int", "float", "bool", "enum", "string", "int_list", "sides", "optional_int",
                 "optional_float", "pair"]
WIDGETS: tuple[str, ...] = get_args(Widget)


def config_field(default: Any = ..., *, label: str, group: str, widget: str, description: str,
                 unit: Optional[str] = None, advanced: bool = False, requires: Optional[str] = None,
                 **constraints: Any) -> Any:
    """A config field with its description and UI metadata (one place for both). ``requires``:
    hardware the key only means something with ("gpu": the form hides it when no live worker has one)."""
    ui = {"label": label, "group": group, "widget": widget, "unit": unit, "advanced": advanced,
          "requires": requires}
    if "default_factory" not in constraints:
        constraints["default"] = default
    return Field(description=description, json_schema_extra={"ui": ui}, **constraints)


_f = config_field


class StrictModel(BaseModel):
    """A config block: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_Strict = StrictModel


class UNetConfig(_Strict):
    dim: int = _f(32, ge=8, label="Base channels", group="model", widget="int", unit="channels",
                  description="channels of the first level; a multiple of 8")
    channel_mults: list[int] = _f(
        default_factory=lambda: [1, 2, 4], min_length=1, label="Channel multipliers", group="model",
        widget="int_list", description="channel multiplier per level; one level per entry (e.g. 1, 2, 4)")
    res_blocks: int = _f(2, ge=1, label="Residual blocks per level", group="model", widget="int",
                         description="residual blocks per level")
    attn_res: Optional[list[int]] = _f(
        None, label="Attention at sides", group="model", widget="sides", unit="px",
        description="feature-map side(s) where full attention runs; null = the lowest level, [] = none")
    num_head_channels: int = _f(32, ge=1, label="Channels per head", group="model", widget="int",
                                unit="channels", description="channels per attention head")
    self_condition: bool = _f(
        False, label="Self-conditioning", group="model", widget="bool",
        description="feed the model its own x0 estimate (half the training steps; every sampling step)")
    dropout: float = _f(0.0, ge=0.0, lt=1.0, label="Dropout", group="model", widget="float",
                        advanced=True, description="dropout inside the residual blocks")
    linear_attn: bool = _f(False, label="Linear attention elsewhere", group="model", widget="bool",
                           description="linear attention at the levels without full attention")
    checkpointing: bool = _f(
        False, label="Activation checkpointing", group="model", widget="bool",
        description="recompute activations in the backward pass: about half the training memory, "
                    "about 35% slower")

    @field_validator("attn_res", mode="before")
    @classmethod
    def _int_to_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("channel_mults")
    @classmethod
    def _positive_mults(cls, v: list[int]) -> list[int]:
        if any(m < 1 for m in v):
            raise ValueError("every multiplier must be a positive integer")
        return v


_BETA = "beta of the first / last timestep (linear, sigmoid and quadratic schedules)"


class ScheduleConfig(_Strict):
    schedule: Schedule = _f("linear", label="Noise schedule", group="diffusion", widget="enum",
                            description="noise schedule: linear, cosine, sigmoid or quadratic")
    n_timestep: int = _f(1000, ge=2, le=100000, label="Timesteps", group="diffusion", widget="int",
                         unit="steps", description="diffusion steps T")
    linear_start: float = _f(1e-4, gt=0.0, lt=1.0, label="Beta start", group="diffusion",
                             widget="float", advanced=True, description=_BETA.replace(" / last", ""))
    linear_end: float = _f(0.02, gt=0.0, lt=1.0, label="Beta end", group="diffusion", widget="float",
                           advanced=True, description=_BETA.replace("first / ", ""))

    @model_validator(mode="after")
    def _ordered(self) -> "ScheduleConfig":
        if self.linear_start >= self.linear_end:
            raise ValueError("linear_start must be smaller than linear_end")
        return self


_TRAINS = "null or omitted = train's; a model samples on the noise levels it learned"


class SamplingScheduleConfig(_Strict):
    """The seed's ``beta_schedule.test`` block: only ``n_timestep`` does something."""

    n_timestep: int = _f(1000, ge=2, le=100000, label="Default sampling steps", group="diffusion",
                         widget="optional_int", unit="steps",
                         description="default steps of the ancestral (ddpm) sampler, respaced on "
                                     "train's schedule; no test block = all of train's steps")
    schedule: Optional[Schedule] = _f(None, label="Sampling schedule", group="diffusion",
                                      widget="enum", advanced=True,
                                      description=f"must equal train's ({_TRAINS})")
    linear_start: Optional[float] = _f(None, label="Sampling beta start", group="diffusion",
                                       widget="optional_float", advanced=True,
                                       description=f"must equal train's ({_TRAINS})")
    linear_end: Optional[float] = _f(None, label="Sampling beta end", group="diffusion",
                                     widget="optional_float", advanced=True,
                                     description=f"must equal train's ({_TRAINS})")


class BetaScheduleConfig(_Strict):
    train: ScheduleConfig = Field(default_factory=ScheduleConfig,
                                  description="the noise schedule the model is trained on")
    test: Optional[SamplingScheduleConfig] = Field(
        None, description="optional sampling block (the original note's): only n_timestep is used")

    @model_validator(mode="after")
    def _test_matches_train(self) -> "BetaScheduleConfig":
        if self.test is None:
            return self
        for key in ("schedule", "linear_start", "linear_end"):
            given = getattr(self.test, key)
            if given is not None and given != getattr(self.train, key):
                raise ValueError(
                    f"test.{key} differs from train.{key}: a model can only be sampled on the noise "
                    "levels it was trained on; set only test.n_timestep (sampling steps)")
        if self.test.n_timestep > self.train.n_timestep:
            raise ValueError("test.n_timestep cannot exceed train.n_timestep")
        return self


def _train(default: Any, label: str, widget: str, description: str, **kw: Any) -> Any:
    return _f(default, label=label, group="training", widget=widget, description=description, **kw)


class ModelConfig(_Strict):
    unet: UNetConfig = Field(default_factory=UNetConfig, description="the denoising U-Net")
    beta_schedule: BetaScheduleConfig = Field(default_factory=BetaScheduleConfig,
                                              description="noise schedules")
    lr: float = _train(1e-4, "Learning rate", "float", "peak learning rate", gt=0.0, le=1.0)
    optimizer: Literal["adam", "adamw"] = _train("adamw", "Optimizer", "enum", "adam or adamw")
    weight_decay: float = _train(0.0, "Weight decay", "float", "weight decay (decoupled for adamw)",
                                 ge=0.0, advanced=True)
    loss_type: Literal["l1", "l2", "huber"] = _f("l2", label="Loss", group="diffusion", widget="enum",
                                                 description="l1, l2 or huber")
    objective: Literal["pred_noise", "pred_x0", "pred_v"] = _f(
        "pred_noise", label="Objective", group="diffusion", widget="enum",
        description="what the U-Net predicts: pred_noise, pred_x0 or pred_v")
    use_ema: bool = _train(True, "EMA weights", "bool", "keep an exponential moving average of the "
                           "weights (used for samples and export)")
    ema_decay: float = _train(0.999, "EMA decay", "float", "EMA decay, reached after a warm-up "
                              "(min(decay, (1+n)/(10+n)))", gt=0.0, lt=1.0, advanced=True)
    iterations: int = _train(10000, "Iterations", "int", "optimizer steps", ge=1, unit="steps")
    freq_metrics: int = _train(1000, "Metrics every (steps)", "int", "steps between held-out "
                               "metrics and samples", ge=1)
    freq_checkpoint: int = _train(2000, "Checkpoint every (steps)", "int", "steps between checkpoints",
                                  ge=1)
    keep_checkpoints: int = _train(3, "Checkpoints kept", "int", "periodic checkpoints kept besides "
                                   "the final one", ge=1, advanced=True)
    warmup_steps: int = _train(0, "Warm-up steps", "int", "linear learning-rate warm-up steps",
                               ge=0, unit="steps")
    lr_schedule: Literal["constant", "cosine"] = _train(
        "constant", "LR schedule", "enum", "after warm-up: constant, or cosine decay to 0 at `iterations`")
    grad_clip: Optional[float] = _train(1.0, "Gradient clip", "optional_float",
                                        "gradient-norm clip; null = off", gt=0.0, advanced=True)
    precision: Precision = _train(
        "auto", "Precision", "enum",
        "auto: bf16 where the device runs it natively (a CUDA GPU of compute capability 8.0+, a CPU "
        "with AVX512-BF16 or AMX-BF16), fp32 elsewhere; or fp32; bf16 autocast (emulated and many "
        "times slower on other CPUs); fp16 autocast + gradient scaler (CUDA only)")
    min_snr_gamma: Optional[float] = _f(None, gt=0.0, label="Min-SNR gamma", group="diffusion",
                                        widget="optional_float", advanced=True,
                                        description="min-SNR loss weighting (e.g. 5); null = off")
    metric_samples: int = _train(4, "Samples per metric step", "int",
                                 "EMA samples drawn at each metric step", ge=0, le=64)
    metric_sampler: Sampler = _train(DEFAULT_SAMPLER, "Metric sampler", "enum",
                                     "sampler for the metric-step samples", advanced=True)
    metric_steps: int = _train(20, "Metric sampler steps", "int", "sampling steps for the "
                               "metric-step samples", ge=1, le=10000, unit="steps", advanced=True)


class IntensityConfig(_Strict):
    window: list[float] = _f(
        ..., min_length=2, max_length=2, label="Intensity window", group="data", widget="pair",
        description="[low, high] fixed intensity window instead of percentiles (e.g. CT HU "
                    "[-1000, 400]); no intensity block = clip_percentiles")

    @field_validator("window")
    @classmethod
    def _ordered(cls, v: list[float]) -> list[float]:
        if v[0] >= v[1]:
            raise ValueError("window low must be smaller than high")
        return v


def _data(default: Any, label: str, widget: str, description: str, **kw: Any) -> Any:
    return _f(default, label=label, group="data", widget=widget, description=description, **kw)


class DatasetConfig(_Strict):
    name: Literal["volume3d", "image2d"] = _data(
        "volume3d", "Dataset type", "enum", "volume3d (NIfTI/.npy volumes) or image2d (PNG/JPEG/TIFF/"
        "2D .npy); default follows is_3d", advanced=True)
    path: str = _data("datasets/", "Dataset path", "string", "folder searched recursively for "
                      "supported files (the original note's `<path>/<name>/volumes/` works); the app sets it "
                      "to the chosen dataset", advanced=True)
    image_size: int = _data(64, "Image size", "int", "side of the cube/square the data is resized "
                            "to (e.g. 64 = 64x64x64)", ge=4, le=1024, unit="px")
    image_channels: int = _data(1, "Image channels", "int", "channels (4D NIfTI last axis, or RGB)",
                                ge=1, le=16)
    batch_size: int = _data(2, "Batch size", "int", "samples per micro-batch", ge=1, unit="samples")
    grad_accumulation: int = _data(1, "Gradient accumulation", "int",
                                   "micro-batches per optimizer step (averaged)", ge=1)
    num_workers: int = _data(2, "Loader workers", "int", "DataLoader worker processes", ge=0,
                             advanced=True)
    pin_memory: bool = _data(True, "Pin memory", "bool", "pinned host memory for faster copies to "
                             "the GPU", advanced=True)
    cache: bool = _data(True, "Cache preprocessed data", "bool",
                        "cache preprocessed volumes on disk, keyed by content+settings", advanced=True)
    clip_percentiles: Optional[list[float]] = _data(
        None, "Clip percentiles", "pair", "clip intensities to these percentiles before scaling; "
        "null = min/max", default_factory=lambda: [0.5, 99.5], min_length=2, max_length=2)
    intensity: Optional[IntensityConfig] = Field(
        None, description="`{\"window\": [low, high]}` instead of percentiles")
    flip: bool = _data(False, "Random flips", "bool", "random flips along every spatial axis")
    keep_aspect: bool = _data(True, "Keep aspect", "bool", "keep the physical aspect (pad to the cube)",
                              advanced=True)
    val_fraction: float = _data(0.1, "Validation fraction", "float", "held-out share for metrics",
                                ge=0.0, lt=1.0)

    @field_validator("clip_percentiles")
    @classmethod
    def _percentiles(cls, v: Optional[list[float]]) -> Optional[list[float]]:
        if v is not None and not (0.0 <= v[0] < v[1] <= 100.0):
            raise ValueError("need 0 <= low < high <= 100")
        return v


def _general(default: Any, label: str, widget: str, description: str, **kw: Any) -> Any:
    return _f(default, label=label, group="general", widget=widget, description=description, **kw)


class TrainConfig(_Strict):
    gpu: int = _general(0, "GPU index", "int", "CUDA device index; -1 or a machine without CUDA = "
                        "CPU (with a warning when a GPU was asked for)", ge=-1, advanced=True,
                        requires="gpu")
    experiment_path: str = _general(
        "experiments", "Experiment path", "string",
        "runs go to `<experiment_path>/<run name>/` (the app sets it to `DATA_DIR/runs`)", advanced=True)
    is_3d: bool = _general(False, "3D volumes", "bool",
                           "3D volumes (B,C,D,H,W) instead of 2D images (B,C,H,W)")
    seed: int = _general(0, "Seed", "int", "seed of weights, data order, noise and the held-out split",
                         ge=0)
    model: ModelConfig = Field(default_factory=ModelConfig, description="model and training")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="data and loading")

    @property
    def dims(self) -> int:
        return 3 if self.is_3d else 2

    @model_validator(mode="before")
    @classmethod
    def _dataset_name_follows_is_3d(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("dataset", {}), dict) \
                and "name" not in data.get("dataset", {}):
            data = {**data, "dataset": {**data.get("dataset", {}),
                                        "name": "volume3d" if data.get("is_3d") is True else "image2d"}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        errors = self.problems()
        if errors:
            raise ConfigError(errors)
        return self

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks, each as (key path, reason)."""
        errs: list[tuple[str, str]] = []
        ds, unet = self.dataset, self.model.unet
        want = "volume3d" if self.is_3d else "image2d"
        if ds.name != want:
            errs.append(("dataset.name", f"'{ds.name}' does not match is_3d={str(self.is_3d).lower()}; "
                                         f"use '{want}'"))
        errs += [("dataset.image_size" if key == "image_size" else f"model.unet.{key}", msg)
                 for key, msg in unet_shape_problems(
            unet.dim, unet.channel_mults, ds.image_size, unet.attn_res, unet.num_head_channels,
            unet.linear_attn)]
        if self.model.metric_sampler == "ddpm" and self.model.metric_steps > self.model.beta_schedule.train.n_timestep:
            errs.append(("model.metric_steps", "cannot exceed model.beta_schedule.train.n_timestep"))
        return errs
