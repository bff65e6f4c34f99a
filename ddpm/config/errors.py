"""Config errors in words: pydantic's validation errors of a config model turned into
(dotted key path, reason) pairs that name the key, the nearest known key and the allowed values.

``load_config`` (CLI, engine), the API's 422 of job creation and ``POST /api/config/check`` all
report through ``describe_errors``, so a bad key reads the same everywhere. Torch-free.
"""
from __future__ import annotations

import difflib
import json
from typing import Any, Optional

from pydantic import BaseModel, Field


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


# Words people use for a config key that spelling alone would not lead to: {word: dotted path}.
# An unknown key whose name (or near-spelling) is here gets this path as its suggestion.
KEY_ALIASES: dict[str, str] = {
    "learning_rate": "model.lr",
    "epochs": "model.iterations",
    "steps": "model.iterations",
    "max_steps": "model.iterations",
    "num_steps": "model.iterations",
    "batch": "dataset.batch_size",
    "batchsize": "dataset.batch_size",
    "timesteps": "model.beta_schedule.train.n_timestep",
    "resolution": "dataset.image_size",
    "channels": "dataset.image_channels",
    "heads": "model.unet.num_head_channels",
    "amp": "model.precision",
    "ema": "model.use_ema",
    "device": "gpu",
}

# Steps pydantic adds to a location that are not keys (validator wrappers, union members).
_NOT_KEYS = {"function-after", "function-before", "function-wrap", "int", "list[int]"}


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


def _suggestion(model: type[BaseModel], parent: tuple, key: str, known: list[str]) -> Optional[str]:
    """The key the user probably meant: a word of KEY_ALIASES (or a near spelling of one),
    else the nearest spelling among the keys known here. The meaning goes first because a word
    like ``lerning_rate`` is spelled closer to ``metric_steps`` than to ``lr``."""
    alias = difflib.get_close_matches(key.lower(), list(KEY_ALIASES), n=1, cutoff=0.8)
    if alias:
        target = KEY_ALIASES[alias[0]].split(".")
        parent_model = _submodel(model, tuple(target[:-1]))
        if parent_model is not None and target[-1] in parent_model.model_fields:
            here = [str(p) for p in parent]
            return target[-1] if target[:-1] == here else ".".join(target)
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return near[0] if near else None


def _unknown_key(model: type[BaseModel], loc: tuple) -> str:
    parent = _submodel(model, loc[:-1])
    known = list(parent.model_fields) if parent else []
    near = _suggestion(model, loc[:-1], str(loc[-1]), known)
    hint = f" (did you mean '{near}'?)" if near else ""
    return f"unknown key{hint}; known keys: {', '.join(known)}"


def _describe(model: type[BaseModel], err: dict) -> tuple[str, str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _NOT_KEYS))
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return path, _unknown_key(model, loc)
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        return path, f"{err['input']!r} is not allowed; allowed values: {expected.replace(' or ', ', ')}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if "input" in err and kind != "missing" and not isinstance(err["input"], dict):
        msg = f"{msg} (got {json.dumps(err['input'], default=str)})"
    return path, msg


def describe_errors(model: type[BaseModel], errors: list[dict]) -> list[tuple[str, str]]:
    """``ValidationError.errors()`` of a validation of ``model`` -> (dotted key path, reason).

    A cross-field ``ConfigError`` raised inside a model contributes its own pairs, under the
    location of the model that raised it.
    """
    out: list[tuple[str, str]] = []
    for err in errors:
        nested = err.get("ctx", {}).get("error")
        if isinstance(nested, ConfigError):
            prefix = [str(p) for p in err["loc"] if not (isinstance(p, str) and p in _NOT_KEYS)]
            out.extend((".".join(prefix + [loc] if loc else prefix), msg) for loc, msg in nested.errors)
        else:
            out.append(_describe(model, err))
    return out
