"""Check a config without running anything (torch-free): the normalised config, every error by
key path, and the model's size. ``POST /api/config/check`` answers with this; the form calls it
as the user types."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field, ValidationError

from ddpm.config import CONFIG_KINDS, ConfigError, ErrorItem, TrainConfig, describe_errors
from ddpm.model_size import count_unet_parameters, estimate_train_memory_bytes


class ConfigCheck(BaseModel):
    """What a config would be and cost, or why it cannot be used."""

    ok: bool
    config: Optional[dict[str, Any]] = Field(None, description="the config with every default "
                                                               "filled in; null when it has errors")
    errors: list[ErrorItem] = Field(default_factory=list, description="loc = config.<key path>, as "
                                                                      "in the 422 of job creation")
    param_count: Optional[int] = Field(None, description="exact U-Net parameter count")
    train_memory_bytes: Optional[int] = Field(
        None, description="estimated peak memory of a training step on its device (weights, "
                          "optimizer state, EMA, activations of one micro-batch)")


def _loc(path: str) -> str:
    return f"config.{path}" if path else "config"


def check_config(kind: str, raw: Any) -> ConfigCheck:
    """Validate ``raw`` as a config of ``kind`` (a key of ``CONFIG_KINDS``)."""
    model = CONFIG_KINDS.get(kind)
    if model is None:
        return ConfigCheck(ok=False, errors=[ErrorItem(loc="kind", msg=f"unknown config kind {kind!r}; "
                                                                       f"known: {', '.join(CONFIG_KINDS)}")])
    if not isinstance(raw, dict):
        return ConfigCheck(ok=False, errors=[ErrorItem(loc="config", msg="a config must be a JSON object")])
    try:
        cfg = model.model_validate(raw)
    except ConfigError as exc:
        pairs = exc.errors
    except ValidationError as exc:
        pairs = describe_errors(model, exc.errors())
    else:
        sized = isinstance(cfg, TrainConfig)
        return ConfigCheck(ok=True, config=cfg.model_dump(mode="json"),
                           param_count=count_unet_parameters(cfg) if sized else None,
                           train_memory_bytes=estimate_train_memory_bytes(cfg) if sized else None)
    return ConfigCheck(ok=False, errors=[ErrorItem(loc=_loc(p), msg=m) for p, m in pairs])
