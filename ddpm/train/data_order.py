"""An infinite, seeded, resumable order over the training set.

Epoch e visits every index once in the order ``randperm(n, seed=(seed, e))``. The position in
this stream is just "how many samples the loop has consumed", which the trainer counts itself
(a DataLoader prefetches ahead of what was used), so the state saved in a checkpoint is
``{seed, epoch, position}`` and resuming starts the stream at exactly that sample.

Each item is produced under its own RNG seed (derived from seed and its place in the stream),
so random augmentation (flips) is the same in a resumed run as in an uninterrupted one, with or
without worker processes.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads nearby (seed, count) pairs apart


def _item_seed(seed: int, count: int) -> int:
    return (seed * _MIX + count * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


class InfiniteOrder(Sampler):
    """Yields ``(dataset index, stream position)`` forever, starting at ``start``."""

    def __init__(self, n: int, seed: int, start: int = 0) -> None:
        if n <= 0:
            raise ValueError("the training set is empty")
        self.n, self.seed, self.start = n, seed, start

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(_item_seed(self.seed, epoch) ^ 0x5DEECE66D)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        count = self.start
        epoch, pos = divmod(count, self.n)
        while True:
            perm = self.permutation(epoch)
            for i in range(pos, self.n):
                yield perm[i], count
                count += 1
            epoch, pos = epoch + 1, 0

    def state(self, consumed: int) -> dict[str, int]:
        epoch, pos = divmod(consumed, self.n)
        return {"seed": self.seed, "epoch": epoch, "position": pos, "consumed": consumed, "n": self.n}


class RankShard(Sampler):
    """This process's share of the global stream: the stream is cut into global micro-batches of
    ``batch_size`` (every start position is a multiple of it: a step consumes whole micro-batches)
    and rank r of W takes positions ``[r*b, (r+1)*b)`` of each, ``b = batch_size / W``. Concatenated
    in rank order the shares are the micro-batches one process would read, so the order, and a
    resume on any number of processes, do not depend on the number of processes."""

    def __init__(self, order: InfiniteOrder, batch_size: int, rank: int, world_size: int) -> None:
        self.order, self.batch_size = order, batch_size
        per = batch_size // world_size
        self.lo, self.hi = rank * per, (rank + 1) * per

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index, count in self.order:
            if self.lo <= count % self.batch_size < self.hi:
                yield index, count


class SeededItems(Dataset):
    """Wraps a dataset so that item ``(index, count)`` is made under a fixed RNG seed.

    The global torch / numpy / python RNGs are restored afterwards, so loading in the main
    process (num_workers=0) does not disturb the training step's random numbers.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, count = key
        s = _item_seed(self.seed, count)
        t_state, n_state, p_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
        try:
            # the CPU generator only (all that is saved and restored around the item); torch.manual_seed
            # would also queue CUDA seeding on every item
            torch.default_generator.manual_seed(s)
            np.random.seed(s % 2**32)
            random.seed(s)
            return self.dataset[index]
        finally:
            torch.set_rng_state(t_state)
            np.random.set_state(n_state)
            random.setstate(p_state)


def ignore_sigint_in_worker(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops cleanly at a step end."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
