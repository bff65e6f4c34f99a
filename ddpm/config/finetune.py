"""The schema of a fine-tune config: a pretrained DDPM U-Net (or the same architecture from
scratch) trained as a segmenter on a labelled folder. Torch-free, like the training schema.

Keys that training has mean the same here and are taken from the training schema's fields
(constraints, description, UI metadata); only a default that fine-tuning needs different is
restated. Keys that describe the pretrained model's input (``is_3d``, ``dataset.image_size``,
``image_channels``, ``keep_aspect``, ``clip_percentiles``, ``intensity``) default to what the
pretrained run used when they are omitted: ``with_pretrained`` fills them in, and the run's
``config.json`` holds the filled-in config, so it says exactly what was trained.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from ddpm.config.errors import ConfigError
from ddpm.config.rules import unet_shape_problems
from ddpm.config.train import (BetaScheduleConfig, DatasetConfig, IntensityConfig, ModelConfig, Precision,
                               StrictModel, TrainConfig, UNetConfig, config_field)

__all__ = ["FinetuneConfig", "FinetuneDatasetConfig", "FinetuneModelConfig", "TaskConfig", "INHERITED_KEYS"]

_OMITTED = "; omitted = the pretrained run's"
# the segmenter's time input when a config omits it, as a fraction of the pretrained run's
# diffusion timesteps: fed t = 0 the pretrained U-Net transferred worse than fed a moderate t
# (bench/RESULTS.md, "Pretraining value")
FINETUNE_TIME_FRACTION = 0.1


def default_timestep(n_timestep: int) -> int:
    """The time input of a segmenter whose config omits ``model.timestep``."""
    return int(round(FINETUNE_TIME_FRACTION * n_timestep))


# a fine-tune run saved before the key existed was trained at t = 0
_TIMESTEP_BEFORE_THE_KEY = 0


def saved_finetune_config(raw: dict) -> dict:
    """A fine-tune run's saved config (checkpoint or export) as it was trained: every saved
    config holds every key, so one without ``model.timestep`` predates it (t = 0)."""
    model = raw.get("model")
    if isinstance(model, dict) and "timestep" not in model:
        return {**raw, "model": {**model, "timestep": _TIMESTEP_BEFORE_THE_KEY}}
    return raw


def _like(model: type[StrictModel], name: str, **changes: Any) -> Any:
    """Training's field ``name`` of ``model`` (with ``changes``, e.g. another default)."""
    return FieldInfo.merge_field_infos(model.model_fields[name], **changes)


def _inherited(model: type[StrictModel], name: str) -> Any:
    """Training's field, defaulting to the pretrained run's value when omitted (the training
    default is what a scratch run gets)."""
    info = model.model_fields[name]
    return FieldInfo.merge_field_infos(info, description=f"{info.description}{_OMITTED}")


class TaskConfig(StrictModel):
    type: Literal["segmentation"] = config_field(
        "segmentation", label="Task", group="general", widget="enum",
        description="what the fine-tuned model predicts: segmentation (one class per voxel/pixel)")
    num_classes: int = config_field(
        2, ge=2, le=255, label="Classes", group="general", widget="int",
        description="classes K of the label maps, background (0) included; labels hold 0..K-1")


class FinetuneDatasetConfig(StrictModel):
    path: str = config_field(
        "datasets/labelled/", label="Labelled dataset path", group="data", widget="string",
        advanced=True, description="labelled folder: images/ and labels/ holding files of the same "
                                   "names, or nnU-Net's imagesTr/ (<case>_0000.nii.gz) and labelsTr/ "
                                   "(<case>.nii.gz); the app sets it to the chosen dataset")
    labelled_cases: Optional[int] = config_field(
        None, ge=1, label="Labelled cases", group="data", widget="optional_int", unit="cases",
        description="labelled cases to train on, drawn with seed from the training split; null = all")
    image_size: int = _inherited(DatasetConfig, "image_size")
    image_channels: int = _inherited(DatasetConfig, "image_channels")
    batch_size: int = _like(DatasetConfig, "batch_size")
    grad_accumulation: int = _like(DatasetConfig, "grad_accumulation")
    # the labelled cases are few and held in memory after their first read: no worker processes
    num_workers: int = _like(DatasetConfig, "num_workers", default=0)
    pin_memory: bool = _like(DatasetConfig, "pin_memory")
    val_fraction: float = _like(DatasetConfig, "val_fraction", default=0.2,
                                description="held-out share of the cases for validation Dice "
                                            "(taken before labelled_cases are drawn)")
    flip: bool = _like(DatasetConfig, "flip", default=True,
                       description="random flips along every spatial axis, of image and label together")
    keep_aspect: bool = _inherited(DatasetConfig, "keep_aspect")
    clip_percentiles: Optional[list[float]] = _inherited(DatasetConfig, "clip_percentiles")
    intensity: Optional[IntensityConfig] = Field(
        None, description=f"`{{\"window\": [low, high]}}` instead of percentiles{_OMITTED}")

    _percentiles = field_validator("clip_percentiles")(DatasetConfig._percentiles.__func__)


class FinetuneModelConfig(StrictModel):
    unet: UNetConfig = Field(default_factory=UNetConfig,
                             description="the U-Net of a scratch run (pretrained null); with a "
                                         "pretrained run it is the pretrained U-Net")
    freeze: Literal["none", "encoder"] = config_field(
        "none", label="Freeze", group="training", widget="enum",
        description="none = train every weight; encoder = keep the pretrained encoder (time "
                    "embedding, first conv, down path, middle block) fixed")
    timestep: Optional[int] = config_field(
        None, ge=0, le=100000, label="Time input", group="training", widget="int", advanced=True,
        description="the diffusion timestep the U-Net is fed, fixed for every image (below the "
                    "pretrained run's n_timestep): 0 = the noise-free end, the seed protocol's "
                    "choice; a moderate t puts the pretrained denoiser where it had to infer "
                    "structure, not only fine noise; null = a tenth of the pretrained run's "
                    "timesteps (100 of 1000; scratch: of the training default)")
    # ten times training's: at the default iterations both arms segmented far better at 1e-3
    # than at 1e-4, and a pretrained backbone at a tenth of the head's rate fell below the
    # image-blind floor (bench/RESULTS.md, "Pretraining value")
    lr: float = _like(ModelConfig, "lr", default=1e-3)
    optimizer: Literal["adam", "adamw"] = _like(ModelConfig, "optimizer")
    weight_decay: float = _like(ModelConfig, "weight_decay")
    iterations: int = _like(ModelConfig, "iterations", default=2000)
    warmup_steps: int = _like(ModelConfig, "warmup_steps")
    lr_schedule: Literal["constant", "cosine"] = _like(ModelConfig, "lr_schedule")
    grad_clip: Optional[float] = _like(ModelConfig, "grad_clip")
    precision: Precision = _like(ModelConfig, "precision")
    use_ema: bool = _like(ModelConfig, "use_ema", default=False,
                          description="keep an exponential moving average of the weights (used "
                                      "for validation, evaluation and prediction)")
    ema_decay: float = _like(ModelConfig, "ema_decay")
    freq_metrics: int = _like(ModelConfig, "freq_metrics", default=200,
                              description="steps between validation Dice measurements")
    freq_checkpoint: int = _like(ModelConfig, "freq_checkpoint", default=500)
    keep_checkpoints: int = _like(ModelConfig, "keep_checkpoints")


# (key path, where it lives in a TrainConfig): what a pretrained run decides when omitted
INHERITED_KEYS: tuple[tuple[str, str], ...] = (
    ("is_3d", "is_3d"),
    ("dataset.image_size", "dataset.image_size"),
    ("dataset.image_channels", "dataset.image_channels"),
    ("dataset.keep_aspect", "dataset.keep_aspect"),
    ("dataset.clip_percentiles", "dataset.clip_percentiles"),
    ("dataset.intensity", "dataset.intensity"),
)
# keys that change which weights exist: a pretrained run's are the only possible ones
_ARCHITECTURE = ("is_3d", "dataset.image_channels", "model.unet")


def _get(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


def _set(d: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        d = d[part]
    d[last] = value


def _given(cfg: StrictModel, dotted: str) -> bool:
    """Whether the user wrote ``dotted`` (rather than it taking its default)."""
    *parents, last = dotted.split(".")
    node: Any = cfg
    for part in parents:
        if part not in node.model_fields_set:
            return False
        node = getattr(node, part)
    return last in node.model_fields_set


class FinetuneConfig(StrictModel):
    pretrained: Optional[str] = config_field(
        None, label="Pretrained run", group="general", widget="string",
        description="a training run folder (its newest checkpoint; EMA weights when it kept them) "
                    "or a full `ddpm export` .safetensors file; null = the same architecture from "
                    "scratch (model.unet)")
    task: TaskConfig = Field(default_factory=TaskConfig, description="what the model learns to predict")
    gpu: int = _like(TrainConfig, "gpu")
    experiment_path: str = _like(TrainConfig, "experiment_path")
    is_3d: bool = _inherited(TrainConfig, "is_3d")
    seed: int = _like(TrainConfig, "seed", description="seed of the new head, data order, flips, the "
                                                       "held-out split and the labelled cases drawn")
    model: FinetuneModelConfig = Field(default_factory=FinetuneModelConfig,
                                       description="the segmenter and its training")
    dataset: FinetuneDatasetConfig = Field(default_factory=FinetuneDatasetConfig,
                                           description="the labelled data")

    @property
    def dims(self) -> int:
        return 3 if self.is_3d else 2

    @model_validator(mode="after")
    def _consistent(self) -> "FinetuneConfig":
        errors = self.problems()
        if errors:
            raise ConfigError(errors)
        return self

    def time_input(self) -> int:
        """The segmenter's fixed t: ``model.timestep``; null, once ``with_pretrained`` has filled
        a pretrained run's in, means a scratch run, fed what a run of the default schedule gets."""
        if self.model.timestep is not None:
            return self.model.timestep
        return default_timestep(BetaScheduleConfig().train.n_timestep)

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks, each as (key path, reason). With a pretrained run the U-Net is
        checked once its shape is known (``with_pretrained``)."""
        if self.pretrained is not None and not _given(self, "model.unet"):
            return []
        unet = self.model.unet
        return [("dataset.image_size" if key == "image_size" else f"model.unet.{key}", msg)
                for key, msg in unet_shape_problems(unet.dim, unet.channel_mults, self.dataset.image_size,
                                                    unet.attn_res, unet.num_head_channels, unet.linear_attn)]

    def with_pretrained(self, trained: TrainConfig) -> "FinetuneConfig":
        """This config with what the pretrained run decides filled in: omitted input keys take
        its values, the U-Net is its U-Net. A key given that would change its architecture is a
        ConfigError naming the key."""
        mine, theirs = self.model_dump(mode="json"), trained.model_dump(mode="json")
        errors = []
        for key in _ARCHITECTURE:
            if _given(self, key) and _get(mine, key) != _get(theirs, key):
                errors.append((key, f"{_get(mine, key)!r} differs from the pretrained run's "
                                    f"{_get(theirs, key)!r}; omit it to use the pretrained model's"))
        steps = trained.model.beta_schedule.train.n_timestep
        if self.model.timestep is not None and self.model.timestep >= steps:
            errors.append(("model.timestep", f"{self.model.timestep} is outside the pretrained run's "
                                             f"diffusion (timesteps 0..{steps - 1})"))
        if errors:
            raise ConfigError(errors)
        for key, source in INHERITED_KEYS:
            if not _given(self, key):
                _set(mine, key, _get(theirs, source))
        mine["model"]["unet"] = theirs["model"]["unet"]
        if mine["model"]["timestep"] is None:
            mine["model"]["timestep"] = default_timestep(steps)
        return type(self).model_validate(mine)
