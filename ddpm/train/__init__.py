"""Training: the loop, EMA, LR schedule, metrics and the callback interface.

The run folder it writes (checkpoints, layout, sample files, RunError) is ``ddpm.run``.
"""
from .callbacks import ProgressInfo, TrainCallbacks
from .errors import NonFiniteLossError
from .trainer import Trainer, TrainResult, run_training

__all__ = ["ProgressInfo", "TrainCallbacks", "NonFiniteLossError", "Trainer", "TrainResult", "run_training"]
