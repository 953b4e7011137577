"""What every window lifter shares: its receptive field and the check of its input shape."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WindowLifter"]


class WindowLifter(nn.Module):
    """Base of the lifters that take windows of exactly ``num_frames`` frames.

    Subclasses set ``num_frames``, ``num_joints`` and ``in_channels`` in ``__init__``.
    """

    num_frames: int
    num_joints: int
    in_channels: int

    @property
    def receptive_field(self) -> int:
        """Input frames of one window (``num_frames``)."""
        return self.num_frames

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` has shape ``(B, T, J, C_in)`` for this model."""
        expected = (self.num_frames, self.num_joints, self.in_channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            t, j, c = expected
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, T, J, C_in) = "
                f"(B, {t}, {j}, {c}), got {tuple(x.shape)}"
            )
