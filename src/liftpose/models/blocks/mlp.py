"""Two-layer feed-forward network of a transformer block."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """``fc1 -> act -> drop -> fc2 -> drop`` applied to the last dimension.

    Args:
        in_features: input channels ``C``.
        hidden_features: hidden channels (default ``in_features``).
        out_features: output channels (default ``in_features``).
        act_layer: activation class, instantiated without arguments.
        drop: dropout probability after the activation and after ``fc2``.

    Shapes: ``(*, C_in) -> (*, C_out)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, act: nn.Module | None = None) -> torch.Tensor:
        """``x: (*, C_in) -> (*, C_out)``; ``act`` replaces the activation for this call (a
        module on ``(*, hidden)``, e.g. a Transformer block's ``in_mlp`` slot)."""
        x = self.fc1(x)
        x = self.act(x) if act is None else act(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = self.drop(x)
        return x
