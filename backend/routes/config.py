"""The config schema, the presets and a live check, served from ddpm.config (torch-free): the
New-job form renders from these, so a key added to the schema appears there with no other edit."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from backend.deps import get_app_settings, get_session, require_token
from backend.dispatch import DeviceChoice
from backend.precision_warning import PRECISION_KEY, emulated_bf16_warning
from backend.settings import Settings
from ddpm.config import CONFIG_KINDS, UI_GROUPS, UiGroup
from ddpm.config.check import ConfigCheck, check_config
from ddpm.config.fields import ConfigField, config_fields
from ddpm.presets import Preset, list_presets

router = APIRouter(prefix="/config", tags=["config"], dependencies=[Depends(require_token)])


class ConfigKindSchema(BaseModel):
    json_schema: dict[str, Any] = Field(..., description="JSON Schema of the config, with each "
                                                         "field's UI metadata under 'ui'")
    fields: list[ConfigField] = Field(..., description="every key, flattened, in form order")


class ConfigSchema(BaseModel):
    groups: list[UiGroup]
    kinds: dict[str, ConfigKindSchema] = Field(..., description="by config kind, e.g. 'train'")


class ConfigCheckRequest(BaseModel):
    kind: str = Field("train", description="config kind, a key of kinds in GET /api/config/schema")
    config: dict[str, Any]
    device: DeviceChoice = Field(DeviceChoice.auto, description="the job's device choice, as in job "
                                                                "creation (it decides which workers "
                                                                "the warnings consider)")


class ConfigWarning(BaseModel):
    loc: str = Field(..., description="config.<key path>, as in errors")
    msg: str


class ConfigCheckOut(ConfigCheck):
    warnings: list[ConfigWarning] = Field(default_factory=list, description=(
        "usable but probably not what you want, given the live workers (e.g. bf16 where every "
        "worker of the job's queue only emulates it); never blocks job creation"))


@router.get("/schema", response_model=ConfigSchema)
def schema() -> ConfigSchema:
    """Every config kind's JSON Schema and flattened fields, and the form's groups."""
    return ConfigSchema(groups=list(UI_GROUPS), kinds={
        kind: ConfigKindSchema(json_schema=model.model_json_schema(), fields=config_fields(kind))
        for kind, model in CONFIG_KINDS.items()})


@router.get("/presets", response_model=list[Preset])
def presets() -> list[Preset]:
    """The ready-made configs (configs/presets/), complete, in picker order."""
    return list_presets()


@router.post("/check", response_model=ConfigCheckOut)
def check(body: ConfigCheckRequest, session: Session = Depends(get_session),
          settings: Settings = Depends(get_app_settings)) -> ConfigCheckOut:
    """Validate without running: 200 with ok=false and the errors (loc = config.<key path>, as in
    the 422 of job creation) when the config cannot be used; with ok=true the normalised config,
    the exact parameter count, a training-memory estimate and warnings about the live workers."""
    result = ConfigCheckOut(**check_config(body.kind, body.config).model_dump())
    slow = emulated_bf16_warning(session, settings.worker_heartbeat_timeout_s, result.config, body.device)
    if slow:
        result.warnings.append(ConfigWarning(loc=PRECISION_KEY, msg=slow))
    return result
