"""The config schemas' front door (torch-free, so the API can validate jobs): every config kind,
loading a config file, and the shared names everyone imports from here.

The training schema lives in ``ddpm.config.train``, the fine-tune schema in
``ddpm.config.finetune``; both are registered in ``CONFIG_KINDS``, from which the README's config
tables (scripts/config_reference.py), ``GET /api/config/schema`` and the forms are generated.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError

from ddpm.config.errors import ConfigError, ErrorItem, describe_errors
from ddpm.config.finetune import FinetuneConfig, default_timestep, saved_finetune_config
from ddpm.config.rules import (attention_sides, batch_split_problems, feature_sides, split_batch,
                               unet_shape_problems, valid_sizes_near)
from ddpm.config.train import (DEFAULT_SAMPLER, UI_GROUPS, WIDGETS, BetaScheduleConfig, DatasetConfig,
                               IntensityConfig, ModelConfig, Precision, Sampler, SamplingScheduleConfig,
                               ScheduleConfig, TrainConfig, UiGroup, UNetConfig, Widget)

__all__ = ["default_timestep", "saved_finetune_config", "BetaScheduleConfig", "CONFIG_KINDS", "ConfigError", "DEFAULT_SAMPLER", "DatasetConfig",
           "ErrorItem", "FinetuneConfig", "IntensityConfig", "ModelConfig", "Precision", "Sampler",
           "SamplingScheduleConfig", "ScheduleConfig", "TrainConfig", "UI_GROUPS", "UNetConfig",
           "UiGroup", "WIDGETS", "Widget", "attention_sides", "batch_split_problems", "config_to_dict",
           "describe_errors", "feature_sides", "load_config", "load_finetune_config", "split_batch",
           "unet_shape_problems", "valid_sizes_near"]

# Every kind of config, by the name the API, the form and the README use for it.
CONFIG_KINDS: dict[str, type[BaseModel]] = {"train": TrainConfig, "finetune": FinetuneConfig}

M = TypeVar("M", bound=BaseModel)


def _load(model: type[M], source: Union[str, Path, dict[str, Any]]) -> M:
    """Validate a config of ``model`` from a JSON file path or a dict; ConfigError by key path."""
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
        return model.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(describe_errors(model, exc.errors())) from None


def load_config(source: Union[str, Path, dict]) -> TrainConfig:
    """Load and validate a training config from a JSON file path or a dict."""
    return _load(TrainConfig, source)


def load_finetune_config(source: Union[str, Path, dict]) -> FinetuneConfig:
    """Load and validate a fine-tune config from a JSON file path or a dict."""
    return _load(FinetuneConfig, source)


def config_to_dict(cfg: BaseModel) -> dict:
    """JSON-ready dict that the config's loader reads back to an equal config."""
    return cfg.model_dump(mode="json")
