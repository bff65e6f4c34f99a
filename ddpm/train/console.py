"""Terminal view of a training run for the CLI: a tqdm bar and one line per metric step."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from .callbacks import ProgressInfo, TrainCallbacks
from .metrics import format_metrics_line


class ConsoleCallbacks(TrainCallbacks):
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.bar: Optional[tqdm] = None
        self.total = 0
        self.stop_requested = False

    def _write(self, line: str, err: bool = False) -> None:
        tqdm.write(line, file=sys.stderr if err else sys.stdout)

    def on_start(self, step: int, total: int, resumed_from: Optional[Path]) -> None:
        self.total = total
        if resumed_from is not None:
            self._write(f"resuming {self.run_dir} from step {step} ({resumed_from.name})")
        else:
            self._write(f"training {self.run_dir} for {total} steps")
        # the bar's own rate / ETA count from this start, so a resumed run shows honest numbers
        self.bar = tqdm(total=total, initial=step, desc="train", unit="it", dynamic_ncols=True,
                        disable=None, file=sys.stderr, smoothing=0.1)

    def on_progress(self, info: ProgressInfo) -> None:
        if self.bar is not None:
            self.bar.update(info.step - self.bar.n)
            self.bar.set_postfix(loss=f"{info.loss:.4f}", lr=f"{info.lr:.1e}", refresh=False)

    def on_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        self._write(format_metrics_line(metrics, self.total))

    def request_stop(self) -> None:
        self.stop_requested = True
        self._write("stopping after this step and writing a checkpoint (Ctrl-C again to abort now)", err=True)

    def should_stop(self) -> bool:
        return self.stop_requested

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
