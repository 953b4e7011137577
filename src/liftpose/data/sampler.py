"""The training order: a function of (seed, epoch) alone, resumable from within an epoch.

:class:`EpochSampler` draws each epoch's permutation of the training windows and each window's
horizontal flip from a generator seeded by ``(seed, epoch)`` (not from the global random state),
and keeps this process's shard of it under DDP. :class:`ResumableLoader` is a ``DataLoader`` that
counts the batches it has delivered in the epoch and implements Lightning's ``state_dict`` /
``load_state_dict`` protocol: a checkpoint saved after batch ``k`` restarts at batch ``k + 1``
with the same windows and flips, so a run resumed from a mid-epoch checkpoint trains exactly as
the uninterrupted run did.

A flip travels in the index: with ``flip=True`` the sampler yields ``i + n`` for a mirrored
window ``i`` of ``n`` (:meth:`liftpose.data.datamodule.WindowDataset.__getitems__`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

__all__ = ["EpochSampler", "ResumableLoader", "training_loader"]


class EpochSampler(DistributedSampler):
    """Shuffled window indices (with flips) of one epoch, one shard per process.

    A :class:`~torch.utils.data.distributed.DistributedSampler`, so Lightning keeps it under
    DDP (and calls :meth:`set_epoch`) instead of wrapping it.

    Args:
        num_samples: windows in the dataset (``n``).
        flip: give each window a fair coin per epoch; heads yield ``index + n``.
        seed: seed of the order; the generator of epoch ``e`` is seeded by ``(seed, e)``.
        num_replicas / rank: the process's shard (as in ``DistributedSampler``: the order is
            padded by repeating its head to a multiple of ``num_replicas``).
    """

    def __init__(
        self,
        num_samples: int,
        flip: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(
            range(num_samples), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        self.n = num_samples
        self.flip = flip
        self._resume: tuple[int, int] | None = None  # (epoch, samples of the shard to skip)

    def order(self, epoch: int) -> torch.Tensor:
        """All indices of ``epoch`` (every shard), ``(n,)`` int64, before padding."""
        g = torch.Generator()
        g.manual_seed((int(self.seed) * 1_000_003 + int(epoch)) % (2**63 - 1))
        perm = torch.randperm(self.n, generator=g)
        if self.flip:
            perm = perm + self.n * (torch.rand(self.n, generator=g) < 0.5).long()
        return perm

    def resume(self, epoch: int, skip: int) -> None:
        """Start the next pass over ``epoch`` at sample ``skip`` of this shard (once)."""
        self._resume = (int(epoch), int(skip))

    def __iter__(self) -> Iterator[int]:
        indices = self.order(self.epoch).tolist()
        pad = self.total_size - len(indices)
        if pad > 0:
            indices += (indices * (pad // max(len(indices), 1) + 1))[:pad]
        shard = indices[self.rank : self.total_size : self.num_replicas]
        skip = 0
        if self._resume is not None:
            epoch, skip = self._resume
            self._resume = None
            if epoch != self.epoch or skip >= len(shard):
                skip = 0  # the saved epoch was finished: this is a new one
        return iter(shard[skip:])


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` that Lightning can checkpoint mid-epoch.

    ``state_dict()`` is ``{"seed", "epoch", "batches"}``: the order's seed, the sampler's epoch
    and the batches delivered in that epoch so far (Lightning does not prefetch from a loader
    with a length, so these are the batches trained on). ``load_state_dict`` makes the next
    pass over that epoch skip them. Pass ``generator=torch.Generator()`` so that starting an
    epoch takes nothing from the global random state.
    """

    sampler: EpochSampler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableLoader needs an EpochSampler")
        self._delivered = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        resume = self.sampler._resume
        self._delivered = 0
        if resume is not None and resume[0] == self.sampler.epoch:
            if resume[1] < len(self.sampler):  # else the sampler starts the epoch afresh
                self._delivered = resume[1] // self.batch_size
        for batch in super().__iter__():
            self._delivered += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": int(self.sampler.seed),
            "epoch": int(self.sampler.epoch),
            "batches": int(self._delivered),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.seed = int(state["seed"])
        self.sampler.resume(int(state["epoch"]), int(state["batches"]) * int(self.batch_size))


def training_loader(
    dataset: Any,
    batch_size: int,
    trainer: Any = None,
    flip: bool = False,
    num_workers: int = 0,
    collate_fn: Any = None,
    pin_memory: bool = False,
) -> ResumableLoader:
    """The training loader of a DataModule: an :class:`EpochSampler` (order and flips from the
    run's seed and the epoch; a flipped sample is index ``i + len(dataset)``, which the dataset
    must read as sample ``i`` mirrored) in a :class:`ResumableLoader`, one shard per process
    under DDP (``trainer``'s world size and rank; rank 0's seed for all).
    """
    replicas, rank = (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)
    seed = torch.initial_seed() % (2**63 - 1)  # seed_everything(seed) makes it the run's
    if trainer is not None and replicas > 1:
        seed = trainer.strategy.broadcast(seed, src=0)  # one order for all processes
    sampler = EpochSampler(len(dataset), flip=flip, seed=seed, num_replicas=replicas, rank=rank)
    return ResumableLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        drop_last=False,
        generator=torch.Generator(),  # starting an epoch leaves the global RNG alone
    )
