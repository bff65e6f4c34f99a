"""The New-job form must expose every key of the engine's config (ddpm/config.py). The form
is generated from frontend/src/lib/configFields.ts; this reads its paths and walks the
pydantic schema, so a key added to the engine without a form field fails here."""
from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from ddpm.config import TrainConfig

FIELDS_TS = Path(__file__).resolve().parents[2] / "frontend" / "src" / "lib" / "configFields.ts"

# Sub-objects the form edits through one leaf: beta_schedule.test copies train except its
# step count (the engine rejects anything else), intensity is just its window.
THROUGH = {"model.beta_schedule.test": "model.beta_schedule.test.n_timestep",
           "dataset.intensity": "dataset.intensity.window"}


def _model_of(annotation) -> type[BaseModel] | None:  # noqa: ANN001
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found:
            return found
    return None


def engine_leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if path in THROUGH:
            out.add(THROUGH[path])
        elif sub is not None:
            out |= engine_leaves(sub, path + ".")
        else:
            out.add(path)
    return out


def form_paths() -> set[str]:
    return set(re.findall(r'\{ path: "([^"]+)"', FIELDS_TS.read_text()))


def test_every_engine_key_has_a_form_field():
    missing = engine_leaves(TrainConfig) - form_paths()
    assert not missing, f"config keys without a New-job form field: {sorted(missing)}"


def test_every_form_field_is_an_engine_key():
    unknown = form_paths() - engine_leaves(TrainConfig)
    assert not unknown, f"form fields the engine does not know: {sorted(unknown)}"
