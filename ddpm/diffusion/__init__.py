"""Gaussian diffusion: beta schedules, the DDPM module (training loss, predictions) and samplers."""
from .gaussian import DDPM
from .samplers import sample
from .schedules import SCHEDULES, make_betas

__all__ = ["DDPM", "SCHEDULES", "make_betas", "sample"]
