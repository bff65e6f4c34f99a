"""Several processes as one training job: torch.distributed set up from the launcher's environment.

torchrun (or ``ddpm train --nproc N``, which runs torch's elastic agent: ``ddpm.launch``)
starts every process with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; a
process started without them is a job of one and nothing here talks to other processes.

- The device: CUDA device LOCAL_RANK (the index on this machine, never the global rank, which
  would name a GPU that does not exist on a second node) with NCCL; the CPU with gloo.
- The batch: ``dataset.batch_size`` is the global micro-batch; each process takes
  ``batch_size / world_size`` of it (``split_batch``), so a config trains the same whatever the
  number of processes, and the learning rate is never scaled.
- Only rank 0 reports: the other ranks' callbacks are reduced to ``should_stop``
  (``RankCallbacks``), and a stop any rank asks for is agreed by all (``StopVote``).
"""
from __future__ import annotations

import datetime
import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as tdist

from ddpm.config import ConfigError
from ddpm.config.rules import split_batch  # noqa: F401  (the rule the API applies at submit too)
from ddpm.device import resolve_device

from .callbacks import TrainCallbacks

# a rank waits this long in a collective: at a metric step rank 0 alone measures the held-out loss
# and writes the samples, which for a large 3D model takes minutes; a process that dies is noticed
# by the launcher, not by this timeout
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)


@dataclass(frozen=True)
class Dist:
    """Where this process stands in its job (a job of one: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_group: bool = False  # this process initialised the group, so it also ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def env_world() -> Dist:
    """The job this process was launched into, read from the launcher's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(rank=int(os.environ.get("RANK", "0")), world_size=world,
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def start(gpu: Any) -> tuple[Dist, torch.device]:
    """Join the job of the environment (if any) and choose this process's device.

    ``gpu`` is the config's request: a CPU request stays on the CPU (gloo); a CUDA request runs on
    device LOCAL_RANK of the devices this process sees (CUDA_VISIBLE_DEVICES) with NCCL."""
    dist = env_world()
    if not dist.active:
        return dist, resolve_device(gpu)
    # the index in the request names a GPU of a one-process run; a rank's GPU is LOCAL_RANK
    asks_cuda = gpu >= 0 if isinstance(gpu, int) else gpu is not None and torch.device(gpu).type == "cuda"
    device = torch.device("cuda") if asks_cuda and torch.cuda.is_available() else resolve_device(gpu)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if dist.local_rank >= count:
            raise ConfigError([("gpu", f"process with LOCAL_RANK {dist.local_rank} needs CUDA device "
                                       f"{dist.local_rank}, but this machine shows {count}; start at most "
                                       f"{count} processes per machine")])
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if tdist.is_initialized():  # a caller (e.g. a notebook under torchrun) already joined
        return dist, device
    # The elastic agent keeps one store for every restart of the group; the keys the previous
    # group's processes left there (their addresses) would send the new ones to dead peers, so
    # each attempt writes under its own prefix.
    store, _, _ = next(tdist.rendezvous("env://", timeout=COLLECTIVE_TIMEOUT))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT,
                             store=tdist.PrefixStore(f"ddpm/attempt-{attempt}", store), rank=dist.rank,
                             world_size=dist.world_size, device_id=device if device.type == "cuda" else None)
    return Dist(dist.rank, dist.world_size, dist.local_rank, started_group=True), device


def finish(dist: Optional[Dist]) -> None:
    if dist is not None and dist.started_group and tdist.is_initialized():
        tdist.destroy_process_group()


def mean_over_ranks(value: torch.Tensor, dist: Dist) -> torch.Tensor:
    """The mean of ``value`` over the ranks (every rank holds an equal share of the batch)."""
    if not dist.active:
        return value
    value = value.clone()
    tdist.all_reduce(value)
    return value / dist.world_size


class StopVote:
    """A stop any rank asks for, agreed by every rank at the same step, without a step waiting
    for the device.

    Each call casts this rank's vote (an asynchronous MAX all-reduce) and returns the outcome of
    the vote cast ``LAG`` calls before, which every rank reads at the same call: the job stops
    together one step after the request. A blocking vote would cost a host sync per step (the
    launch-bound GPU step of issue 15 cannot afford one); here the outcome read was finished a
    step ago. On CUDA it reaches the host by a non-blocking copy into pinned memory and an event;
    on gloo the reduction runs in gloo's own thread. A job of one process needs no vote."""

    LAG = 1

    def __init__(self, dist: Dist, device: torch.device) -> None:
        self.dist, self.device = dist, device
        self.pending: deque[tuple[Optional[Any], torch.Tensor, Optional[Any]]] = deque()

    def __call__(self, flag: bool) -> bool:
        if not self.dist.active:
            return flag
        vote = torch.full((1,), 1.0 if flag else 0.0, device=self.device)  # a fill: no copy, no sync
        work = tdist.all_reduce(vote, op=tdist.ReduceOp.MAX, async_op=True)
        if self.device.type == "cuda":
            work.wait()  # the current stream waits for the reduction; the host does not
            host = torch.empty(1, pin_memory=True)
            host.copy_(vote, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self.pending.append((None, host, done))
        else:
            self.pending.append((work, vote, None))
        if len(self.pending) <= self.LAG:
            return False
        return self._read()

    def _read(self) -> bool:
        work, value, done = self.pending.popleft()
        if work is not None:
            work.wait()
        if done is not None:
            done.synchronize()
        return bool(value.item())

    def settle(self) -> None:
        """Complete the votes still in flight (every rank cast them) before the group ends."""
        while self.pending:
            self._read()


def from_main(obj: Any, dist: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. which checkpoint to resume: one decision, one file)."""
    if not dist.active:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather(items: list, dist: Dist) -> list:
    """Every rank's ``items``, concatenated in rank order, on every rank."""
    if not dist.active:
        return items
    boxes: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(boxes, items)
    return [item for box in boxes for item in box]


def wrap(module: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """``module`` averaging its gradients over the ranks (DDP), or itself in a job of one. Every
    step uses every trainable weight (self-conditioning is a mask, not a branch), so DDP needs
    no find_unused_parameters search."""
    if not dist.active:
        return module
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # a 1-channel conv weight is both contiguous and channels-last; DDP's bucket takes one layout,
    # the gradient the other, and the copy it warns about is a few dozen floats
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # buffers hold no state that training changes (the schedule is derived from the config)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


class RankCallbacks(TrainCallbacks):
    """What a rank other than 0 passes on: only ``should_stop`` (a Ctrl-C reaches every process)."""

    def __init__(self, inner: TrainCallbacks) -> None:
        self.inner = inner

    def should_stop(self) -> bool:
        return self.inner.should_stop()


class LossOf(torch.nn.Module):
    """The module DDP wraps: its forward is the model's training loss, so the gradient hooks DDP
    sets on the shared parameters fire for the loss the loop backpropagates."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.p_losses(x, **inputs)
