"""Ready-made configs (2D/3D x tiny/small/base), kept once as JSON in ``configs/presets/``.

Each ``<name>.json`` there is a plain training config (``ddpm train --config
configs/presets/<name>.json`` runs it); ``index.json`` lists them in the order a picker shows
them, with a title and a note each. The API serves them (``GET /api/config/presets``) and the
New-job form starts from them. Torch-free.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, Field

from ddpm.config import CONFIG_KINDS, ConfigError, config_to_dict, load_config

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "presets"


class Preset(BaseModel):
    """A named, complete config to start from."""

    name: str = Field(..., description="file stem in configs/presets/, e.g. tiny_3d")
    title: str = Field(..., description="what a picker shows, e.g. '3D tiny'")
    note: str = Field(..., description="one line on what the preset is for")
    kind: str = Field("train", description="config kind (a key of ddpm.config.CONFIG_KINDS)")
    config: dict[str, Any] = Field(..., description="the whole config, every key spelled out")


def list_presets(folder: Optional[Path] = None) -> list[Preset]:
    """Every preset of ``index.json``, validated; a preset that does not validate raises
    ``ConfigError`` naming the file."""
    folder = folder or PRESET_DIR
    out = []
    for entry in json.loads((folder / "index.json").read_text()):
        kind = entry.get("kind", "train")
        path = folder / f"{entry['name']}.json"
        try:
            config = config_to_dict(load_config(path)) if kind == "train" else \
                CONFIG_KINDS[kind].model_validate_json(path.read_text()).model_dump(mode="json")
        except ConfigError as exc:
            raise ConfigError([(f"{path.name}: {loc}", msg) for loc, msg in exc.errors]) from None
        out.append(Preset(name=entry["name"], title=entry["title"], note=entry["note"], kind=kind,
                          config=config))
    return out
