"""The one schema of a training config (pydantic), torch-free so the API can validate jobs.

The seed note's ``config_3d.json`` loads unchanged. Keys mean what the seed says they mean:
``attn_res`` is the feature-map side (or sides) where full attention runs, ``num_head_channels``
is channels per attention head, ``res_blocks`` is residual blocks per level.

Where the seed's framework had keys that did not do what they said, we define them honestly:
``beta_schedule.test`` cannot change the noise levels a model was trained on, so only its
``n_timestep`` is used (the default number of ancestral sampling steps, respaced on the training
schedule); its other fields must match ``train``.
"""
from __future__ import annotations

import difflib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Schedule = Literal["linear", "cosine", "sigmoid", "quadratic"]


class Sampler(StrEnum):
    """The samplers the engine has; the REST API, the CLI and the UI take their names from here."""

    ddpm = "ddpm"
    ddim = "ddim"
    dpmpp2m = "dpmpp2m"


# The fast sampler the README recommends (DPM-Solver++ 2M at 20-25 steps): every default sampler.
DEFAULT_SAMPLER = Sampler.dpmpp2m


class ErrorItem(BaseModel):
    """One bad input: the 422 of job creation and of /api/config/check list these."""

    loc: str = Field(..., description="dotted key path of the bad field (e.g. config.model.lr, "
                                      "dataset_id) or the file's path")
    msg: str


class ConfigError(ValueError):
    """A config that cannot be used. ``errors`` holds (key path, reason) pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("\n".join(f"{loc}: {msg}" if loc else msg for loc, msg in errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class UNetConfig(_Strict):
    dim: int = Field(32, ge=8, description="base channels of the first level")
    channel_mults: list[int] = Field(default_factory=lambda: [1, 2, 4], min_length=1,
                                     description="channel multiplier per level; one level per entry")
    res_blocks: int = Field(2, ge=1, description="residual blocks per level")
    attn_res: Optional[list[int]] = Field(
        None, description="feature-map side(s) where full attention runs; null = the lowest level")
    num_head_channels: int = Field(32, ge=1, description="channels per attention head")
    self_condition: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    linear_attn: bool = Field(False, description="linear attention at the levels without full attention")
    checkpointing: bool = Field(False, description="activation checkpointing: about half the memory, about 35% slower (64³ bf16)")

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


class ScheduleConfig(_Strict):
    schedule: Schedule = "linear"
    n_timestep: int = Field(1000, ge=2, le=100000)
    linear_start: float = Field(1e-4, gt=0.0, lt=1.0)
    linear_end: float = Field(0.02, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "ScheduleConfig":
        if self.linear_start >= self.linear_end:
            raise ValueError("linear_start must be smaller than linear_end")
        return self


class BetaScheduleConfig(_Strict):
    train: ScheduleConfig = Field(default_factory=ScheduleConfig)
    test: Optional[ScheduleConfig] = Field(
        None, description="only n_timestep is used: default ancestral sampling steps (respaced)")

    @model_validator(mode="after")
    def _test_matches_train(self) -> "BetaScheduleConfig":
        if self.test is None:
            return self
        for key in ("schedule", "linear_start", "linear_end"):
            if getattr(self.test, key) != getattr(self.train, key):
                raise ValueError(
                    f"test.{key} differs from train.{key}: a model can only be sampled on the noise "
                    "levels it was trained on; set only test.n_timestep (sampling steps)")
        if self.test.n_timestep > self.train.n_timestep:
            raise ValueError("test.n_timestep cannot exceed train.n_timestep")
        return self


class ModelConfig(_Strict):
    unet: UNetConfig = Field(default_factory=UNetConfig)
    beta_schedule: BetaScheduleConfig = Field(default_factory=BetaScheduleConfig)
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    optimizer: Literal["adam", "adamw"] = "adamw"
    weight_decay: float = Field(0.0, ge=0.0)
    loss_type: Literal["l1", "l2", "huber"] = "l2"
    objective: Literal["pred_noise", "pred_x0", "pred_v"] = "pred_noise"
    use_ema: bool = True
    ema_decay: float = Field(0.999, gt=0.0, lt=1.0)
    iterations: int = Field(10000, ge=1, description="optimizer steps")
    freq_metrics: int = Field(1000, ge=1, description="steps between held-out metrics and samples")
    freq_checkpoint: int = Field(2000, ge=1, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, description="periodic checkpoints kept besides the final one")
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up steps")
    lr_schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: Optional[float] = Field(1.0, gt=0.0, description="gradient-norm clip; null = off")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    min_snr_gamma: Optional[float] = Field(None, gt=0.0, description="min-SNR loss weighting (e.g. 5)")
    metric_samples: int = Field(4, ge=0, le=64, description="EMA samples drawn at each metric step")
    metric_sampler: Sampler = DEFAULT_SAMPLER
    metric_steps: int = Field(20, ge=1, le=10000)


class IntensityConfig(_Strict):
    window: list[float] = Field(..., min_length=2, max_length=2,
                                description="[low, high] intensity window (e.g. CT HU [-1000, 400])")

    @field_validator("window")
    @classmethod
    def _ordered(cls, v: list[float]) -> list[float]:
        if v[0] >= v[1]:
            raise ValueError("window low must be smaller than high")
        return v


class DatasetConfig(_Strict):
    name: Literal["volume3d", "image2d"] = Field("volume3d", description="default follows is_3d")
    path: str = "datasets/"
    image_size: int = Field(64, ge=4, le=1024)
    image_channels: int = Field(1, ge=1, le=16)
    batch_size: int = Field(2, ge=1)
    grad_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step (averaged)")
    num_workers: int = Field(2, ge=0)
    pin_memory: bool = True
    cache: bool = Field(True, description="cache preprocessed volumes on disk, keyed by content+settings")
    clip_percentiles: Optional[list[float]] = Field(
        default_factory=lambda: [0.5, 99.5], min_length=2, max_length=2,
        description="clip intensities to these percentiles before scaling; null = min/max")
    intensity: Optional[IntensityConfig] = Field(None, description="fixed window instead of percentiles")
    flip: bool = Field(False, description="random flips along every spatial axis")
    keep_aspect: bool = Field(True, description="keep the physical aspect (pad to the cube)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="held-out share for metrics")

    @field_validator("clip_percentiles")
    @classmethod
    def _percentiles(cls, v: Optional[list[float]]) -> Optional[list[float]]:
        if v is not None and not (0.0 <= v[0] < v[1] <= 100.0):
            raise ValueError("need 0 <= low < high <= 100")
        return v


class TrainConfig(_Strict):
    gpu: int = Field(0, ge=-1, description="CUDA device index; -1 = CPU")
    experiment_path: str = "experiments"
    is_3d: bool = False
    seed: int = Field(0, ge=0)
    model: ModelConfig = Field(default_factory=ModelConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)

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


def feature_sides(image_size: int, levels: int) -> list[int]:
    """Feature-map side at each U-Net level, from the input down to the lowest."""
    return [image_size // 2 ** i for i in range(levels)]


def attention_sides(attn_res: Optional[list[int]], sides: list[int]) -> list[int]:
    """The sides where full attention runs: ``attn_res``, or the lowest level's side when null."""
    return [sides[-1]] if attn_res is None else list(attn_res)


def unet_shape_problems(dim: int, channel_mults: list[int], image_size: int,
                        attn_res: Optional[list[int]], num_head_channels: int,
                        linear_attn: bool = False) -> list[tuple[str, str]]:
    """Why a U-Net of this shape cannot be built, as (U-Net key, reason) pairs; [] when it can.

    The one place these rules live: ``TrainConfig`` reports them by key path and ``UNet``
    raises them for a direct construction.
    """
    errs: list[tuple[str, str]] = []
    levels = len(channel_mults)
    factor = 2 ** (levels - 1)
    if image_size % factor:
        ok = valid_sizes_near(image_size, factor)
        return [("image_size", f"{image_size} cannot pass through {levels} levels (must be divisible "
                               f"by {factor}); try {' or '.join(map(str, ok))}")]
    sides = feature_sides(image_size, levels)
    for side in attn_res or []:
        if side not in sides:
            errs.append(("attn_res", f"{side} is not a feature-map side; the sides are {sides}"))
    channels = [dim * m for m in channel_mults]
    full = attention_sides(attn_res, sides)
    for level, side in enumerate(sides):
        if side in full or linear_attn:
            if channels[level] % num_head_channels:
                errs.append(("num_head_channels", f"{num_head_channels} does not divide the "
                                                  f"{channels[level]} channels at side {side}"))
    if dim % 8:
        errs.append(("dim", f"{dim} must be a multiple of 8 (GroupNorm groups)"))
    return errs


def valid_sizes_near(size: int, factor: int) -> list[int]:
    lower = max(factor, size // factor * factor)
    return sorted({lower, lower + factor})


def _known_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _submodel(model: type[BaseModel], loc: tuple) -> Optional[type[BaseModel]]:
    """Walk a location path through nested models; None where it leaves them."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        for arg in getattr(ann, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                ann = arg
        current = ann
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _format(err: dict) -> tuple[str, str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in {"function-after", "int", "list[int]"}))
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _submodel(TrainConfig, loc[:-1])
        known = _known_keys(parent) if parent else []
        near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return path, f"unknown key{hint}; known keys: {', '.join(known)}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return path, f"{err['input']!r} is not allowed; allowed values: {expected.replace(' or ', ', ')}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if "input" in err and kind != "missing" and not isinstance(err["input"], dict):
        msg = f"{msg} (got {json.dumps(err['input'])})"
    return path, msg


def load_config(source: Union[str, Path, dict]) -> TrainConfig:
    """Load and validate a training config from a JSON file path or a dict."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError([("", f"config file {path} does not exist")]) from None
        except json.JSONDecodeError as exc:
            raise ConfigError([("", f"{path} is not valid JSON: line {exc.lineno} column {exc.colno}: "
                                    f"{exc.msg}")]) from None
    else:
        data = source
    if not isinstance(data, dict):
        raise ConfigError([("", "a config must be a JSON object")])
    try:
        return TrainConfig.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as exc:
        nested = [e for e in exc.errors() if isinstance(e.get("ctx", {}).get("error"), ConfigError)]
        errors = [_format(e) for e in exc.errors() if e not in nested]
        for e in nested:
            errors.extend(e["ctx"]["error"].errors)
        raise ConfigError(errors) from None


def config_to_dict(cfg: TrainConfig) -> dict:
    """JSON-ready dict that load_config reads back to an equal config."""
    return cfg.model_dump(mode="json")
