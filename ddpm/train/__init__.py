"""Training: the loop, checkpoints, EMA, LR schedule, metrics and the callback interface."""
from .callbacks import ProgressInfo, SampleFile, TrainCallbacks
from .errors import NonFiniteLossError, RunError
from .run_dir import RunPaths, run_dir_for, run_name_for
from .trainer import Trainer, TrainResult, resolve_device, run_training

__all__ = ["ProgressInfo", "SampleFile", "TrainCallbacks", "NonFiniteLossError", "RunError", "RunPaths",
           "run_dir_for", "run_name_for", "Trainer", "TrainResult", "resolve_device", "run_training"]
