"""Learning-rate schedules of the reference recipes that PyTorch has no class for."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["EpochDecay", "StepDecay"]


class EpochDecay(LambdaLR):
    """Multiply the learning rate by ``gamma`` after each epoch, and by ``large_gamma`` instead
    after every ``large_every``-th epoch (MHFormer: 0.95, with 0.5 every 5th epoch).

    After ``k`` epochs the factor is ``prod(f(e) for e in 1..k)`` with
    ``f(e) = large_gamma if large_every and e % large_every == 0 else gamma``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        gamma: float,
        large_gamma: float | None = None,
        large_every: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        self.gamma, self.large_gamma, self.large_every = gamma, large_gamma, large_every
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, epochs: int) -> float:
        big = 0
        if self.large_every and self.large_gamma is not None:
            big = epochs // self.large_every
        return math.pow(self.gamma, epochs - big) * math.pow(self.large_gamma or 1.0, big)


class StepDecay(LambdaLR):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs, counting again from
    each epoch in ``restarts`` (where a new training stage starts at the initial rate).

    After ``k`` epochs the factor is ``gamma ** ((k - r) // step_size)`` with ``r`` the last
    restart ``<= k`` (0 if none). lifting-by-image.txt: ``gamma = 0.9`` every 4 epochs.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        step_size: int = 4,
        gamma: float = 0.9,
        restarts: list[int] | tuple[int, ...] = (),
        last_epoch: int = -1,
    ) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        self.restarts = sorted(int(r) for r in restarts)
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, epochs: int) -> float:
        start = max([r for r in self.restarts if r <= epochs], default=0)
        return math.pow(self.gamma, (epochs - start) // self.step_size)
