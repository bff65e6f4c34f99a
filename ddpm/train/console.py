"""Terminal view of a training run for the CLI: a tqdm bar and one line per metric step,
Ctrl-C as a request to stop at a checkpoint, and the closing line with its exit code."""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from tqdm import tqdm

from ddpm.exit_codes import EXIT_INTERRUPTED

from .callbacks import ProgressInfo, TrainCallbacks
from .metrics import format_metrics_line
from .trainer import TrainResult


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
        self.close()  # the bar of a previous run (a study trains several in a row)
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


@contextmanager
def stop_on_ctrl_c(callbacks: ConsoleCallbacks) -> Iterator[ConsoleCallbacks]:
    """While the block runs, a first Ctrl-C asks ``callbacks`` to stop after the current step
    (the loop then writes a checkpoint and returns "stopped"), a second one raises
    KeyboardInterrupt at once. The previous handler is restored and the bar closed after."""
    previous = signal.getsignal(signal.SIGINT)

    def _on_sigint(signum: int, frame: Any) -> None:
        if callbacks.stop_requested:
            raise KeyboardInterrupt  # second Ctrl-C: leave now, without a checkpoint
        callbacks.request_stop()

    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield callbacks
    finally:
        signal.signal(signal.SIGINT, previous)
        callbacks.close()


def report_result(result: TrainResult) -> int:
    """Print how a run ended; the command's exit code (0 done, EXIT_INTERRUPTED stopped)."""
    if result.status == "stopped":
        sys.stderr.write(f"interrupted at step {result.step}: checkpoint {result.final_checkpoint}; "
                         f"run the same command to resume\n")
        return EXIT_INTERRUPTED
    print(f"done: {result.step} steps, final checkpoint {result.final_checkpoint}")
    return 0
