"""Every leaf key of a config kind as one flat list, read from the schema's fields.

The README's config table (scripts/config_reference.py), ``GET /api/config/schema`` and the
New-job form all come from ``config_fields``; nothing here names a key. Torch-free.
"""
from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

from ddpm.config import CONFIG_KINDS, UI_GROUPS, WIDGETS, Widget


class ConfigField(BaseModel):
    """One key of a config, with what a form or a reference table needs to show it."""

    path: str = Field(..., description="dotted key path, e.g. model.unet.num_head_channels")
    label: str
    group: str = Field(..., description="id of a UI group (see groups of GET /api/config/schema)")
    widget: Widget = Field(..., description="how the form edits the value: sides = feature-map sides "
                                            "(null = the lowest level, [] = none), pair = two numbers")
    unit: Optional[str] = None
    advanced: bool = False
    requires: Optional[Literal["gpu"]] = Field(None, description="hardware the key only means something "
                                                                 "with: the form hides it when no live "
                                                                 "worker has it")
    description: str
    default: Any = Field(None, description="the default value (JSON); null when required or null")
    required: bool = Field(False, description="the key has no default (inside its object)")
    options: Optional[list[str]] = Field(None, description="allowed values of an enum")
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: Optional[float] = None
    exclusive_maximum: Optional[float] = None
    nullable: bool = Field(False, description="null is an allowed value of this key")
    parent_nullable: bool = Field(
        False, description="the key lives in an object that may be null (e.g. model.beta_schedule."
                           "test): a null value in the form means no parent object; a value "
                           "creates it with this key set and the others at their defaults")


class SchemaError(TypeError):
    """A config model field without the UI metadata every field must carry."""


def _arms(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None members of an Optional/Union annotation, and whether None is one."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def _submodel(annotation: Any) -> Optional[type[BaseModel]]:
    arms, _ = _arms(annotation)
    for arm in arms:
        if isinstance(arm, type) and issubclass(arm, BaseModel):
            return arm
    return None


def _options(annotation: Any) -> Optional[list[str]]:
    arms, _ = _arms(annotation)
    for arm in arms:
        if typing.get_origin(arm) is typing.Literal:
            return [str(v) for v in typing.get_args(arm)]
        if isinstance(arm, type) and issubclass(arm, Enum):
            return [str(m.value) for m in arm]
    return None


def _bounds(info: FieldInfo) -> dict[str, Optional[float]]:
    out: dict[str, Optional[float]] = {}
    for meta in info.metadata:
        for attr, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusive_minimum"),
                          ("lt", "exclusive_maximum")):
            value = getattr(meta, attr, None)
            if value is not None:
                out[key] = float(value)
    return out


def _json_default(info: FieldInfo) -> Any:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    return value.value if isinstance(value, Enum) else value


def _leaf(path: str, info: FieldInfo, parent_nullable: bool) -> ConfigField:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    ui = extra.get("ui")
    if not isinstance(ui, dict) or not info.description:
        raise SchemaError(f"config key {path} needs a description and json_schema_extra['ui']")
    groups = {g.id for g in UI_GROUPS}
    if ui.get("group") not in groups or ui.get("widget") not in WIDGETS:
        raise SchemaError(f"config key {path}: group must be one of {sorted(groups)} and widget one "
                          f"of {list(WIDGETS)}")
    return ConfigField(path=path, label=ui["label"], group=ui["group"], widget=ui["widget"],
                       unit=ui.get("unit"), advanced=bool(ui.get("advanced")), requires=ui.get("requires"),
                       description=info.description, default=_json_default(info),
                       required=info.is_required(), options=_options(info.annotation),
                       nullable=_arms(info.annotation)[1], parent_nullable=parent_nullable,
                       **_bounds(info))


def model_fields(model: type[BaseModel], prefix: str = "",
                 parent_nullable: bool = False) -> list[ConfigField]:
    """The leaf keys of ``model``, depth first in declaration order; nested models are walked."""
    out: list[ConfigField] = []
    for name, info in model.model_fields.items():
        sub = _submodel(info.annotation)
        if sub is not None:
            nullable = _arms(info.annotation)[1]
            out.extend(model_fields(sub, f"{prefix}{name}.", parent_nullable or nullable))
        else:
            out.append(_leaf(prefix + name, info, parent_nullable))
    return out


def config_fields(kind: str = "train") -> list[ConfigField]:
    """The flattened fields of the config kind ``kind`` (a key of ``CONFIG_KINDS``)."""
    if kind not in CONFIG_KINDS:
        raise KeyError(f"unknown config kind {kind!r}; known: {', '.join(CONFIG_KINDS)}")
    return model_fields(CONFIG_KINDS[kind])
