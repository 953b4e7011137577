"""Learning-rate schedules of the reference recipes that PyTorch has no class for."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["EpochDecay"]


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
