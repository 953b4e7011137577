"""Stochastic depth ("drop path") applied per sample on a residual branch."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DropPath", "drop_path"]


def drop_path(x: torch.Tensor, p: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``p``; rescale the rest by 1/(1-p).

    Args:
        x: ``(B, ...)`` branch output; one Bernoulli draw per sample along dim 0.
        p: drop probability in ``[0, 1)``.
        training: identity when False.

    Returns:
        Tensor of the same shape as ``x``.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep).div_(keep)
    return x * mask


class DropPath(nn.Module):
    """Stochastic depth per sample (Huang et al., 2016); identity in eval mode.

    Shapes: ``(B, *) -> (B, *)``.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropPath probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:.3g}"
